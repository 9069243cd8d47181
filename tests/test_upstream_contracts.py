"""Canaries for the two places that rely on upstream code beyond its public hooks.

Each records the source of the upstream function the workaround is written against. A
new JupyterHub or OAuthenticator that changes it fails here, loudly, naming the module of
ours to review; once reviewed, record the new digest.
"""

import hashlib
import inspect

import pytest
from jupyterhub.handlers.base import BaseHandler
from oauthenticator.github import GitHubOAuthenticator

CONTRACTS = [
    # twoi2c_hub/authenticators/github.py replaces the organisation step of this method
    (
        GitHubOAuthenticator.check_allowed,
        "twoi2c_hub/authenticators/github.py",
        "6ee90185327dfad9f737cf3409b01ab2b4f51edb4634536a2655da760f07d575",
    ),
    # twoi2c_hub/spawners/stop_reason.py finds the request handler on this method's stack
    (
        BaseHandler.stop_single_user,
        "twoi2c_hub/spawners/stop_reason.py",
        "d9be80b2d01fe054840735cfec06338d2b6419fdf5d82dd18faba785bb803494",
    ),
]


@pytest.mark.parametrize("function, ours, digest", CONTRACTS, ids=lambda v: getattr(v, "__qualname__", ""))
def test_upstream_code_we_rely_on_is_unchanged(function, ours, digest):
    source = inspect.getsource(function)
    assert hashlib.sha256(source.encode()).hexdigest() == digest, (
        f"{function.__module__}.{function.__qualname__} changed upstream: review {ours} against it, "
        "then record the new digest here."
    )


def test_the_stop_handler_still_holds_the_request_handler_where_stop_reason_looks():
    source = inspect.getsource(BaseHandler.stop_single_user)
    assert "async def stop():" in source and "await user.stop(server_name)" in source
    assert "self.proxy.delete_user" in source  # `self` (the handler) is in the inner frame
