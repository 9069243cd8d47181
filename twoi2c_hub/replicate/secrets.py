"""The community config as it may travel: secrets out, and a list of what was taken out.

The config file names its secrets by environment variable (`client_secret_env`,
`password_env`, `url_env`, an external authenticator's `settings_from_env`, ...): those
names stay (the new operator sets the variables) and are listed. What would be a secret
written in the file itself is removed and listed: a database URL's password and a
webhook URL given directly.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.engine import URL, make_url


def redacted(config_text: str) -> tuple[str, list[dict[str, str]]]:
    """(the config as YAML without secrets, what the new operator must provide)."""
    data = yaml.safe_load(config_text) or {}
    needed: list[dict[str, str]] = []
    _walk(data, (), needed)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True), needed


def _walk(node: Any, path: tuple[str, ...], needed: list[dict[str, str]]) -> None:
    if isinstance(node, list):
        for index, item in enumerate(node):
            _walk(item, (*path, str(index)), needed)
        return
    if not isinstance(node, dict):
        return
    for key in list(node):
        value, where = node[key], ".".join((*path, str(key)))
        if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
            needed.append({"setting": where, "environment_variable": value})
        elif key == "settings_from_env" and isinstance(value, dict):  # auth.provider external
            needed += [{"setting": f"{where}.{k}", "environment_variable": v} for k, v in value.items()]
        elif key == "database_url" and isinstance(value, str):
            url = make_url(value)
            if url.password:
                bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
                node[key] = bare.render_as_string(hide_password=False)
                needed.append({"setting": where, "removed": "the database password"})
        elif key == "url" and path[-1:] == ("webhook",) and isinstance(value, str):
            del node[key]
            node["url_env"] = "TWOI2C_WEBHOOK_URL"
            needed.append(
                {"setting": where, "removed": "the webhook URL", "environment_variable": "TWOI2C_WEBHOOK_URL"}
            )
        else:
            _walk(value, (*path, str(key)), needed)
