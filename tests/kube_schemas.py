"""Kubernetes objects checked against the schemas of the Kubernetes version we deploy on."""

import kubernetes_validate

KUBERNETES_VERSION = "1.31.0"


def validate(manifest: dict) -> None:
    """Fails on anything the API server would refuse, unknown fields too (strict)."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
