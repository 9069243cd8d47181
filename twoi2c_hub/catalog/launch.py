"""Launch links that pull a repository: `?profile=cpu&repo=https://github.com/org/course
&branch=main&urlpath=lab/tree/course` pre-fills the spawn form and, once the person starts
the server, opens it through nbgitpuller's `git-pull` (which must be in the image), as
2i2c's and mybinder's links do. The values are checked here, on the hub: an https
repository, a branch name, a path inside the server."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlencode

from .profiles import ProfileError

KEYS = ("repo", "branch", "urlpath")
FORM_PREFIX = "git-pull-"
_CHECKS = {
    "repo": (re.compile(r"https://[A-Za-z0-9.\-]+(:[0-9]+)?(/[A-Za-z0-9._~%\-+/]*)?"), "an https:// address"),
    "branch": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._/\-]{0,99}"), "a branch name (letters, digits, . _ / -)"),
    "urlpath": (re.compile(r"[A-Za-z0-9._~%\-+/=?&]{1,300}"), "a path inside the server, like lab/tree/course"),
}


def git_pull_from(values: Mapping[str, object], prefix: str = "") -> dict[str, str] | None:
    """The repository to pull named in `values` (keys `repo`, `branch`, `urlpath`, with
    `prefix`), checked; None without a repo; a ProfileError (400) for a bad value."""
    found = {}
    for key in KEYS:
        value = values.get(prefix + key)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value in (None, ""):
            continue
        pattern, what = _CHECKS[key]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ProfileError(f"The repository to pull: {key} must be {what}, not {value!r}.")
        found[key] = value
    if found and "repo" not in found:
        raise ProfileError("The repository to pull: a branch or path was given without a repo.")
    return found or None


def git_pull_url(git_pull: Mapping[str, str], default_url: str | None = None) -> str:
    """Where the server opens: nbgitpuller's git-pull, then `urlpath` (else the hub's
    default_url)."""
    query = {"repo": git_pull["repo"]}
    if git_pull.get("branch"):
        query["branch"] = git_pull["branch"]
    urlpath = git_pull.get("urlpath") or (default_url or "").lstrip("/")
    if urlpath:
        query["urlpath"] = urlpath
    return "/git-pull?" + urlencode(query)
