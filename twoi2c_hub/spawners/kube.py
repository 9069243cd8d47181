"""ProfileKubeSpawner: KubeSpawner whose profiles depend on the person's groups.

A drop-in for KubeSpawner: every KubeSpawner setting keeps working, and a `profile_list`
written for KubeSpawner (a list, a dict or a callable) is used as it is. What changes:

- `profile_list` is wrapped so KubeSpawner (its form, its `load_user_options`) only ever
  sees what this person is offered, by `allowed_groups` on profiles, choices and
  write-ins;
- a selection that is not theirs, or does not exist, is refused with a 4xx and a message
  saying what was wrong, from the form and from the REST API alike (KubeSpawner alone
  answers a made-up choice with a 500 and a KeyError);
- pods carry labels and an annotation naming the profile, the choices and the resources,
  for accounting;
- per-user environment, and environment and volume mounts for admins only.
"""

from __future__ import annotations

from jupyterhub.utils import maybe_future
from kubespawner import KubeSpawner
from kubespawner.slugs import is_valid_label, safe_slug
from traitlets import Dict, List, default, validate

from .base import ProfileSpawnerMixin

LABEL_PREFIX = "twoi2c-hub/"


def label_value(value) -> str:
    """Any text as a valid, collision-free Kubernetes label value (KubeSpawner's slugs)."""
    return safe_slug(str(value), is_valid=is_valid_label, max_length=63)


class ProfileKubeSpawner(ProfileSpawnerMixin, KubeSpawner):
    """KubeSpawner with group-aware server profiles and accounting labels."""

    admin_volume_mounts = List(
        Dict(),
        config=True,
        help="""Volume mounts added to the servers of hub admins only, after every
        profile override (e.g. a read-write view of a shared directory). The volumes
        they name must be in `volumes`.""",
    )

    _catalog_source = None

    @validate("profile_list")
    def _filter_profile_list(self, proposal):
        # Keep what was configured as the catalog; hand KubeSpawner the filtered view.
        if proposal.value == self._offered_profile_list:
            return proposal.value
        self._catalog_source = proposal.value
        return self._offered_profile_list

    async def _offered_profile_list(self, spawner):
        return await self.offered_profiles()

    async def get_catalog(self) -> list[dict]:
        """The configured profile_list: a list, a dict, or what its callable returns."""
        source = self._catalog_source if self._catalog_source is not None else self.profile_list
        if source == self._offered_profile_list:
            return []
        source = self._sorted_dict_values(source)
        if callable(source):
            source = await maybe_future(source(self))
        return source or []

    @default("options_form")
    def _default_options_form(self):
        # an operator's own KubeSpawner form template (e.g. fancy-profiles) still works
        if self.profile_form_template or self.additional_profile_form_template_paths:
            return self._render_options_form_dynamically
        return self.render_profile_form

    async def load_user_options(self):
        """Refuse a selection that is not this person's (4xx), then let KubeSpawner
        apply the profile's overrides."""
        await self.resolve_selection(self.user_options)
        await super().load_user_options()
        await self.wait_in_line()

    def get_env(self):
        env = super().get_env()
        env.update(self.community_environment())
        return env

    def accounting_labels(self) -> dict[str, str]:
        resolved = self.resolved_server
        if resolved is None or resolved.profile_slug is None:
            return {}
        labels = {LABEL_PREFIX + "profile": label_value(resolved.profile_slug)}
        for option_key, picked in resolved.choices.items():
            key = LABEL_PREFIX + label_value(f"option-{option_key}")
            labels[key] = label_value(picked["choice"] or "write-in")
        figures = {
            "cpu-guarantee": resolved.cpu_guarantee,
            "cpu-limit": resolved.cpu_limit,
            "mem-guarantee": resolved.mem_guarantee,
            "mem-limit": resolved.mem_limit,
            "gpu-count": resolved.gpu_count,
        }
        labels.update({LABEL_PREFIX + k: label_value(v) for k, v in figures.items() if v is not None})
        return labels

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        pod.metadata.labels = {**(pod.metadata.labels or {}), **self.accounting_labels()}
        pod.metadata.annotations = {
            **(pod.metadata.annotations or {}),
            LABEL_PREFIX + "server": self.resolved_annotation(),
        }
        if self.admin_volume_mounts and getattr(self.user, "admin", False):
            container = pod.spec.containers[0]
            container.volume_mounts = list(container.volume_mounts or []) + [
                self._admin_mount(m) for m in self.admin_volume_mounts
            ]
        return pod

    @staticmethod
    def _admin_mount(mount: dict):
        from kubernetes_asyncio.client.models import V1VolumeMount
        from kubespawner.objects import get_k8s_model

        return get_k8s_model(V1VolumeMount, mount)
