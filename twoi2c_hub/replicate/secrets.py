"""The community config as it may travel: secrets out, and a list of what was taken out.

The config file names its secrets by environment variable (`client_secret_env`,
`password_env`, `url_env`, an external authenticator's `settings_from_env`, ...): those
names stay (the new operator sets the variables) and are listed. What would be a secret
written in the file itself is removed and listed:

- a database URL's password in any form SQLAlchemy or libpq reads: in the user-info
  (`user:password@host`, percent-encoded or not) or a query parameter whose name says
  password, secret or token (`password`, `sslpassword`, MySQL's `passwd`, in any case,
  percent-encoded, repeated). A URL whose secret cannot be taken out alone (a libpq
  `key=value` string in the database name or an option, a URL SQLAlchemy cannot read) is
  removed whole: the config's default stands in for it;
- in any other URL anywhere in the config (an OIDC discovery URL, Prometheus, a link): the
  user-info (a token is often the user name) and the query or fragment parameters named
  like a password, secret, token, key or signature;
- the alerts webhook URL, whole (its path is the token);
- a setting named like a secret (`client_secret`, `password`, `api_token`) with its value
  written in (the config's checks refuse one, but an export does not need a valid config).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import yaml
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..config import yamlfile

# a query parameter's name that says its value is a secret (libpq's passfile and sslkey
# are paths, not secrets)
SECRET_PARAMETER = re.compile(
    r"password|passwd|pwd|secret|token|signature|credential|(api|access|private)[-_]?key|^(pass|sig|key|code)$",
    re.IGNORECASE,
)
# a libpq `key=value` pair holding a password, inside a database name or an option
SECRET_PAIR = re.compile(r"(password|passwd|pwd|secret|token)\w*\s*=", re.IGNORECASE)
# a setting whose value is a secret
SECRET_SETTING = re.compile(r"(^|_)(password|passwd|secret|token|api_key|private_key)$", re.IGNORECASE)
WHOLE_URL = "the database URL (a password in it that cannot be taken out alone)"
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def redacted(config_text: str) -> tuple[str, list[dict[str, str]]]:
    """(the config as YAML without secrets, what the new operator must provide)."""
    needed: list[dict[str, str]] = []
    data = _clean(yamlfile.load(config_text) or {}, (), needed)  # within the config's limits
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True), needed


_REMOVED = object()


def _clean(node: Any, path: tuple[str, ...], needed: list[dict[str, str]]) -> Any:
    """`node` without the secrets written in it (_REMOVED: nothing of it may travel)."""
    where = ".".join(path)
    if isinstance(node, list):
        items = (_clean(item, (*path, str(i)), needed) for i, item in enumerate(node))
        return [item for item in items if item is not _REMOVED]
    if isinstance(node, str):
        if path and path[-1].endswith(("database_url", "db_url")):
            return _database_url(node, where, needed)
        clean = _web_urls(node)
        if clean != node:
            needed.append({"setting": where, "removed": "a password or token in a URL"})
        return clean
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        name, inner = str(key), ".".join((*path, str(key)))
        if isinstance(key, str) and _web_urls(key) != key:  # a mapping keyed by URLs (CILogon's idps)
            key = name = _web_urls(key)
            inner = ".".join((*path, name))
            needed.append({"setting": inner, "removed": "a password or token in a URL"})
        if name.endswith("_env") and isinstance(value, str):
            needed.append({"setting": inner, "environment_variable": value})
        elif name == "settings_from_env" and isinstance(value, dict):  # auth.provider external
            needed += [{"setting": f"{inner}.{k}", "environment_variable": v} for k, v in value.items()]
        elif name == "url" and path[-1:] == ("webhook",) and isinstance(value, str):
            out["url_env"] = "TWOI2C_WEBHOOK_URL"
            needed.append(
                {"setting": inner, "removed": "the webhook URL", "environment_variable": "TWOI2C_WEBHOOK_URL"}
            )
            continue
        elif SECRET_SETTING.search(name) and isinstance(value, str | int | float | bytes) and type(value) is not bool:
            needed.append({"setting": inner, "removed": "a secret written in the file"})
            continue
        value = _clean(value, (*path, name), needed)
        if value is not _REMOVED:
            out[key] = value
    return out


def _database_url(text: str, where: str, needed: list[dict[str, str]]) -> Any:
    """A database URL without its password; _REMOVED when it cannot be taken out alone."""
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads (a bad port, a libpq string)
        url = None
    if url is None or "@" in (url.host or ""):  # an @ in the password, not percent-encoded
        if "@" not in text and not SECRET_PAIR.search(text) and not SECRET_PARAMETER.search(text):
            return text  # nothing secret in it: kept as it is
        needed.append({"setting": where, "removed": WHOLE_URL})
        return _REMOVED
    query = {k: v for k, v in url.query.items() if not SECRET_PARAMETER.search(k)}
    rest = [url.database or ""] + [
        v for values in query.values() for v in ((values,) if isinstance(values, str) else values)
    ]
    if any(SECRET_PAIR.search(part) or "://" in part for part in rest):  # libpq reads a key=value dbname
        needed.append({"setting": where, "removed": WHOLE_URL})
        return _REMOVED
    if url.password is None and query == dict(url.query):
        return text
    needed.append({"setting": where, "removed": "the database password"})
    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, query)
    return bare.render_as_string(hide_password=False)


def _web_urls(text: str) -> str:
    """`text` with every URL in it without its secrets."""
    return URL_IN_TEXT.sub(lambda url: _web_url(url.group()), text)


def _web_url(text: str) -> str:
    """A URL without user-info and without query or fragment parameters named like secrets."""
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. a bad IPv6 host: nothing of it may travel
        return ""
    netloc = parts.netloc.rpartition("@")[2]
    query, fragment = _without_secrets(parts.query), _without_secrets(parts.fragment)
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return text
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _without_secrets(query: str) -> str:
    """The `name=value` parameters of a query (or fragment) but those named like secrets,
    or whose value holds a libpq password pair or a URL with a secret."""
    if "=" not in query:
        return query
    kept = []
    for pair in query.split("&"):
        name, _, value = (unquote_plus(part) for part in pair.partition("="))
        if not (SECRET_PARAMETER.search(name) or SECRET_PAIR.search(value) or _web_urls(value) != value):
            kept.append(pair)
    return "&".join(kept)
