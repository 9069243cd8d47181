"""Launch links that pull a repository: `?profile=cpu&repo=https://github.com/org/course
&branch=main&urlpath=lab/tree/course` pre-fills the spawn form and, once the person starts
the server, opens it through nbgitpuller's `git-pull` (which must be in the image), as
2i2c's and mybinder's links do. The values are checked here, on the hub, by the same
rules whether they come in a link (GET) or in the posted form or the REST API's
user_options: an https repository, a branch name, a path inside the server; each at most
MAX_LENGTHS characters, with no control character and no `..` path segment, also when
percent-encoded (`%2e%2e`, `%252e%252e`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import unquote, urlencode

from .profiles import ProfileError

KEYS = ("repo", "branch", "urlpath")
FORM_PREFIX = "git-pull-"
MAX_LENGTHS = {"repo": 500, "branch": 100, "urlpath": 300}
_CHECKS = {
    "repo": (re.compile(r"https://[A-Za-z0-9.\-]+(:[0-9]+)?(/[A-Za-z0-9._~%\-+/]*)?"), "an https:// address"),
    "branch": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._/\-]*"), "a branch name (letters, digits, . _ / -)"),
    "urlpath": (re.compile(r"[A-Za-z0-9._~%\-+/=?&]+"), "a path inside the server, like lab/tree/course"),
}
# percent-decoding applied at most this many times looking for a hidden `..` or control character
_DECODINGS = 4


def _decodings(value: str) -> list[str]:
    """`value` and what it becomes percent-decoded once, twice, ... (until it stops changing)."""
    seen = [value]
    for _ in range(_DECODINGS):
        decoded = unquote(seen[-1], errors="replace")
        if decoded == seen[-1]:
            break
        seen.append(decoded)
    return seen


def _problem(key: str, value: str) -> str | None:
    """What is wrong with one launch-link value, or None."""
    if len(value) > MAX_LENGTHS[key]:
        return f"{key} must be at most {MAX_LENGTHS[key]} characters"
    pattern, what = _CHECKS[key]
    if not pattern.fullmatch(value):
        shown = repr(value[:80])  # escapes make it longer: at most 80 characters of them
        return f"{key} must be {what}, not {shown if len(shown) <= 80 else shown[:79] + '…'}"
    for decoded in _decodings(value):
        if any(unicodedata.category(c) == "Cc" for c in decoded):
            return f"{key} must not contain control characters (also percent-encoded)"
        if key == "branch" and ".." in decoded:
            return "branch must not contain '..', as git refuses it in a branch name"
        # a segment of the path, or of a path in its query (`lab?path=../x`)
        if ".." in re.split(r"[/\\?&=]", decoded):
            return f"{key} must not contain a '..' path segment (also percent-encoded)"
    return None


# the other values of a link or a posted form (profile, option and interface names,
# written-in values): longer than any name or written-in value a catalog accepts
MAX_SELECTION_LENGTH = 1000


def check_selection(selection: Mapping[str, object]) -> None:
    """A ProfileError (400) for a selection key or value that no catalog could mean: too
    long, or with a control character. Checked before the catalog is searched for it."""
    for key, value in selection.items():
        for text in (key, value if isinstance(value, str) else ""):
            if len(text) > MAX_SELECTION_LENGTH:
                raise ProfileError(f"The selection '{key[:80]}' is longer than {MAX_SELECTION_LENGTH} characters.")
            if any(unicodedata.category(c) == "Cc" for c in text):
                raise ProfileError(f"The selection '{key[:80]}' contains a control character.")


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
        if not isinstance(value, str):
            raise ProfileError(f"The repository to pull: {key} must be a string, not {type(value).__name__}.")
        problem = _problem(key, value)
        if problem:
            raise ProfileError(f"The repository to pull: {problem}.")
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
