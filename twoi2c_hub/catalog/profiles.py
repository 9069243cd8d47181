"""The profile catalog: which servers a person may start, as plain data and pure functions.

The catalog is a list of profiles in KubeSpawner's `profile_list` format (the format of
zero-to-jupyterhub's `singleuser.profileList` and of 2i2c's hubs), so an existing hub's
profile list loads unchanged. It is extended with:

- `allowed_groups` on a profile, on a choice and on the write-in (`unlisted_choice`):
  only members of one of those groups are offered it (names compare case-insensitively,
  as GitHub's do); no `allowed_groups` means everyone;
- `node_share` on a profile option: choices generated from an instance type's capacity
  (see `node_share_choices`).

Both spawners and the cost service use these functions; nothing here needs a hub or a
cluster. A selection ("user options") is what KubeSpawner receives:
`{"profile": slug, "<option>": choice, "<option>--unlisted-choice": written-in value}`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from slugify import slugify

UNLISTED_SUFFIX = "--unlisted-choice"
# the value of a choice select that means "use the write-in field": KubeSpawner's form
# (and ours) send the first, jupyterhub-fancy-profiles the second
UNLISTED_SENTINEL = "unlisted-choice"
UNLISTED_SENTINELS = (UNLISTED_SENTINEL, "unlisted_choice")

# node selector keys that name a GPU model, by provider
GPU_TYPE_LABELS = (
    "cloud.google.com/gke-accelerator",
    "k8s.amazonaws.com/accelerator",
    "nvidia.com/gpu.product",
    "accelerator",
)
# node selector keys that name an instance type
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


class ProfileError(Exception):
    """A selection that cannot be started, with a message for the person who made it.

    `status` is the HTTP status it should be answered with: 403 for something that
    exists but is not offered to this person, 400 for something that does not exist or
    is malformed.
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# --- initialising and filtering -----------------------------------------------------


def initialize(profile_list: Iterable[Mapping]) -> list[dict]:
    """A deep copy with KubeSpawner's defaults filled in.

    Every profile gets a `slug` (from its display name, as KubeSpawner makes it), every
    option with choices a default choice (the first, unless one says `default`), and the
    first profile is the default unless one says so.
    """
    profiles = copy.deepcopy(list(profile_list))
    for profile in profiles:
        profile.setdefault("slug", slugify(profile["display_name"]))
        for option in profile.get("profile_options", {}).values():
            choices = option.get("choices") or {}
            if choices and not any(c.get("default") for c in choices.values()):
                next(iter(choices.values()))["default"] = True
            unlisted = option.setdefault("unlisted_choice", {})
            unlisted.setdefault("enabled", False)
            if unlisted["enabled"]:
                unlisted.setdefault("display_name_in_choices", "Other...")
    if profiles and not any(p.get("default") for p in profiles):
        profiles[0]["default"] = True
    return profiles


def _folded(groups: Iterable[str]) -> set[str]:
    return {g.casefold() for g in groups}


def is_allowed(item: Mapping, groups: Iterable[str]) -> bool:
    """True if `item` has no `allowed_groups`, or `groups` meets them (any case)."""
    allowed = item.get("allowed_groups")
    if allowed is None:
        return True
    return bool(_folded(allowed) & _folded(groups))


def available(catalog: Iterable[Mapping], groups: Iterable[str]) -> list[dict]:
    """The profiles, choices and write-ins offered to a member of `groups`.

    A profile with an option left without any choice (all were for other groups and the
    write-in is not theirs either) is dropped: it could not be started. Defaults that
    were filtered out move to the first remaining choice or profile.
    """
    groups = list(groups)
    offered = []
    for profile in initialize(catalog):
        if not is_allowed(profile, groups):
            continue
        startable = True
        for option in profile.get("profile_options", {}).values():
            choices = {
                key: choice for key, choice in (option.get("choices") or {}).items() if is_allowed(choice, groups)
            }
            if choices and not any(c.get("default") for c in choices.values()):
                next(iter(choices.values()))["default"] = True
            option["choices"] = choices
            unlisted = option["unlisted_choice"]
            if unlisted["enabled"] and not is_allowed(unlisted, groups):
                unlisted["enabled"] = False
            if not choices and not unlisted["enabled"]:
                startable = False
        if startable:
            offered.append(profile)
    if offered and not any(p.get("default") for p in offered):
        offered[0]["default"] = True
    return offered


# what a browser is given of a profile, an option, a choice and a write-in: what the
# form shows, never the overrides (images, node selectors, environment) or group names
_PAGE_KEYS = ("slug", "display_name", "description", "default")
_OPTION_KEYS = ("display_name", "dynamic_image_building")
_CHOICE_KEYS = ("display_name", "description", "default")
_UNLISTED_KEYS = (
    "enabled",
    "display_name",
    "display_name_in_choices",
    "description_in_choices",
    "validation_regex",
    "validation_message",
)


def _picked(item: Mapping, keys: Iterable[str]) -> dict:
    return {key: item[key] for key in keys if key in item}


def for_the_page(offered: Iterable[Mapping], selection: Mapping[str, str]) -> list[dict]:
    """The offered profiles (from `available`) as a spawn page's script may see them, in
    KubeSpawner's profile_list shape, with `selection`'s profile and choices the
    defaults (so a form that reads only `default` starts from the person's own)."""
    page = []
    for profile in offered:
        shown = _picked(profile, _PAGE_KEYS)
        options = {}
        for key, option in (profile.get("profile_options") or {}).items():
            choices = {name: _picked(choice, _CHOICE_KEYS) for name, choice in (option.get("choices") or {}).items()}
            if profile["slug"] == selection.get("profile") and selection.get(key) in choices:
                for name, choice in choices.items():
                    choice["default"] = name == selection[key]
            options[key] = {
                **_picked(option, _OPTION_KEYS),
                "choices": choices,
                "unlisted_choice": _picked(option.get("unlisted_choice") or {}, _UNLISTED_KEYS),
            }
        shown["profile_options"] = options
        page.append(shown)
    if any(p["slug"] == selection.get("profile") for p in page):
        for shown in page:
            shown["default"] = shown["slug"] == selection["profile"]
    return page


def selection_from_link(query: Mapping[str, list[str]]) -> dict[str, str]:
    """The selection a launch link names: `?profile=gpu&image=scipy` (option keys as
    the API takes them) or the spawn form's own field names."""
    values = {k: v[0] if isinstance(v, (list, tuple)) else v for k, v in query.items() if v}
    selection = selection_from_form(query)
    if not selection and values.get("profile"):
        selection = {"profile": values["profile"]}
    for key, value in values.items():
        if (
            key not in ("profile", "repo", "branch", "urlpath")
            and not key.startswith("profile-option-")
            and isinstance(value, str)
        ):
            selection.setdefault(key, value)
    return selection


def selection_from_form(formdata: Mapping[str, list[str]]) -> dict[str, str]:
    """The selection a spawn form posted, in the user-options shape KubeSpawner reads.

    Fields are KubeSpawner's: `profile`, `profile-option-<slug>--<option>` and
    `profile-option-<slug>--<option>--unlisted-choice`. Fields of profiles that were not
    selected, and anything else (the XSRF token), are dropped.
    """
    values = {k: v[0] if isinstance(v, (list, tuple)) else v for k, v in formdata.items() if v}
    slug = values.get("profile")
    if not slug:
        return {}
    selection = {"profile": slug}
    prefix = f"profile-option-{slug}--"
    for key, value in values.items():
        if key.startswith(prefix):
            selection[key[len(prefix) :]] = value
    # a write-in field is only meant when its select says so (or has no select: no JS)
    for key in [k for k in selection if k.endswith(UNLISTED_SUFFIX)]:
        option_key = key[: -len(UNLISTED_SUFFIX)]
        if selection.get(option_key, UNLISTED_SENTINEL) not in UNLISTED_SENTINELS or not selection[key].strip():
            del selection[key]
        else:
            selection.pop(option_key, None)
    return selection
