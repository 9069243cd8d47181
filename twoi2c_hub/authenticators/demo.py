"""DemoAuthenticator: a fixed set of people and one password, for the demo hub and tests.

Each person's groups come from the config, so the group-dependent parts of the hub
(profiles, later budgets) can be tried without an identity provider.
"""

from __future__ import annotations

import os
from secrets import compare_digest

from jupyterhub.auth import Authenticator
from traitlets import Bool, Dict, Unicode, default


class DemoAuthenticator(Authenticator):
    """Log in as one of `users` with the shared demo `password`."""

    users = Dict(
        config=True,
        help="""Who may log in: username -> {"groups": [...], "admin": bool}.""",
    )

    password = Unicode(
        config=True,
        help="The one password of every demo user (default: $TWOI2C_DEMO_PASSWORD).",
    )

    @default("password")
    def _default_password(self):
        return os.environ.get("TWOI2C_DEMO_PASSWORD", "")

    manage_groups = Bool(True, config=True, help="Groups come from `users`.")

    @default("allowed_users")
    def _default_allowed_users(self):
        return set(self.users)

    @default("admin_users")
    def _default_admin_users(self):
        return {name for name, spec in self.users.items() if spec.get("admin")}

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        if username not in self.users:
            return None
        if not self.password or not compare_digest(str(data.get("password", "")).encode(), self.password.encode()):
            return None
        spec = self.users[username]
        return {
            "name": username,
            "admin": bool(spec.get("admin")),
            "groups": list(spec.get("groups", [])),
        }
