"""Reading a community config file and turning every problem into a message with a path."""

from __future__ import annotations

import difflib
import logging
import os
import re

from pydantic import ValidationError

from ..catalog.instances import INSTANCE_TYPES
from .auth import PROVIDERS, TAGS
from .external_auth import unknown_setting_warnings
from .models import CommunityConfig, Strict, catalog_problems
from .overrides import profile_warnings, suggestion
from .yamlfile import MAX_CONFIG_BYTES, MAX_SHOWN_CHARS, YamlRefused, load, one_line, read_text, shown

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A config file that cannot be used; `errors` holds one line per problem."""

    def __init__(self, path: str | os.PathLike, errors: list[str]):
        self.path = str(path)
        self.errors = errors
        super().__init__(f"{self.path}: {len(errors)} error(s)\n" + "\n".join(f"  {e}" for e in errors))


def _path(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):
            text += f".{part}" if text else str(part)
        elif str(part).isprintable() and len(str(part)) <= MAX_SHOWN_CHARS:
            text += f'["{part}"]'
        else:
            text += f"[{shown(part)}]"
    return text


def _message(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "twoi2c":
        return error["msg"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "string_pattern_mismatch":
        return "must be lowercase letters, digits, '-' and '_', starting and ending with a letter or digit"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    message = error["msg"]
    return message[0].lower() + message[1:]


def _models(cls=Strict):
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)


def _setting_names() -> set[str]:
    return {name for model in _models() for name in model.model_fields}


def _auth_message(loc: tuple, item: dict) -> tuple[tuple, str] | None:
    """`auth` is one model per provider: its errors carry the provider as a location
    part (`auth.github.client_id`), which is dropped; a setting of another provider is
    named as such, not as an unknown key."""
    if item["type"] == "union_tag_invalid":
        expected = list(PROVIDERS)
        message = f"must be one of {', '.join(map(repr, expected[:-1]))} or {expected[-1]!r}"
        tag = (item.get("ctx") or {}).get("tag")
        if tag and len(str(tag)) <= MAX_SHOWN_CHARS and str(tag).isprintable():
            # another JupyterHub authenticator, named as z2jh names them
            message += f"; for the authenticator {tag}, use provider: external with class: {tag}"
        return ("auth", "provider"), message
    provider = loc[1]
    loc = loc[:1] + loc[2:]
    if item["type"] == "extra_forbidden" and len(loc) == 2:
        if loc[1] == "users":
            return loc, "only the demo provider has a fixed list of users"
        if loc[1] in PROVIDERS:
            return loc, f"is for provider {loc[1]}, but auth.provider is {provider}"
    if item["type"] == "missing" and len(loc) == 2 and loc[1] == provider:
        return loc, f"is required for provider {provider}"
    return None


def validation_messages(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        # union members add their type to the location (e.g. "list[NodeShare]"): drop it
        model_names = {m.__name__ for m in _models()}
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in model_names)))
        message = _message(item)
        if loc[:1] == ("auth",) and (len(loc) > 1 and loc[1] in TAGS or item["type"] == "union_tag_invalid"):
            special = _auth_message(loc, item)
            if special:
                loc, message = special
                lines.append(f"{_path(loc)}: {message}")
                continue
            loc = loc[:1] + loc[2:]
        if item["type"] == "extra_forbidden":
            message += suggestion(loc[-1], _setting_names())
        if message.startswith(("profiles[", "profiles:", "auth.", "auth:", "roles[", "custom_scopes[", "group_leads")):
            lines.extend(message.splitlines())  # checks across settings name their own paths
        else:
            lines.append(f"{_path(loc)}: {message}" if loc else message)
    return lines


def parse_config(text: str, source: str = "<config>", *, overrides: bool = True) -> CommunityConfig:
    """The validated config in `text`, or a ConfigError listing every problem.

    `overrides=False` leaves out the checks of every kubespawner_override against
    KubeSpawner's own settings, which import KubeSpawner (and with it jsonschema's
    format checkers, seconds of start-up): for the hub's services, which read the
    config the hub has already checked and never start a server."""
    try:
        data = load(text, MAX_CONFIG_BYTES)
    except YamlRefused as e:
        raise ConfigError(source, [f"{e.where}not valid YAML: {e.problem}" if e.syntax else str(e)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must be a mapping of sections (hub:, profiles:, ...)"])
    errors = [f"{_path(loc)}: {message}" for loc, message in catalog_problems(data, overrides=overrides)]
    instance_types = data.get("instance_types")
    context = {"instance_types": set(INSTANCE_TYPES) | set(instance_types if isinstance(instance_types, dict) else {})}
    try:
        config = CommunityConfig.model_validate(data, context=context)
    except ValidationError as e:
        errors = validation_messages(e) + errors
    if errors:  # (each one line, however long or strange a key or value it quotes)
        raise ConfigError(source, [one_line(error) for error in errors])
    warnings = [f"{_path(loc)}: {message}" for loc, message in profile_warnings(data, overrides=overrides)]
    if config.auth.provider == "external":
        warnings += unknown_setting_warnings(config.auth)
    config._warnings = [one_line(warning) for warning in warnings + instance_label_warnings(config)]
    return config


def instance_label_warnings(config: CommunityConfig) -> list[str]:
    """An instance type whose node label no cloud gives: its node-share pods would wait
    for a node that never comes, unless the operator's nodes carry that label."""
    warnings = []
    for name, spec in config.instance_types.items():
        label = spec.node_label or name
        if label in INSTANCE_TYPES:
            continue
        where = f"instance_types.{name}.node_label" if spec.node_label else f"instance_types.{name}"
        close = difflib.get_close_matches(label, [t for t in INSTANCE_TYPES if t != label], n=1)
        hint = f" (did you mean node_label: {close[0]}?)" if close else ""
        advice = "make sure its nodes carry that label" if spec.node_label else "set node_label to the value they carry"
        warnings.append(
            f"{where}: '{label}' is not a cloud instance type twoi2c-hub knows: its node-share choices "
            f"pin pods to nodes labelled node.kubernetes.io/instance-type={label}; {advice}{hint}"
        )
    return warnings


def load_config(path: str | os.PathLike, *, overrides: bool = True) -> CommunityConfig:
    """The validated config in `path`, or a ConfigError listing every problem
    (`overrides`: as `parse_config`).

    Its warnings are logged, one line each (`check-config` prints them on stderr)."""
    try:
        text = read_text(path, MAX_CONFIG_BYTES)
    except YamlRefused as e:
        raise ConfigError(path, [str(e)]) from None
    config = parse_config(text, str(path), overrides=overrides)
    for warning in config.warnings:
        log.warning("%s: warning: %s", path, warning)
    return config
