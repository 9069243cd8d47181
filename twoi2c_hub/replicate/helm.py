"""Zero-to-jupyterhub values files read and layered as Helm reads and layers them.

The files given are merged in order (maps key by key, anything else replaced by the later
file, a `null` included), then coalesced with the chart's own values (`--chart-values`,
and zero-to-jupyterhub's defaults for the settings `convert` reads), where a `null` left
standing removes the chart's default. The zero-to-jupyterhub values are found where each
layout keeps them: at the top (the chart itself), under `jupyterhub:` (2i2c's basehub, or
any chart that wraps z2jh), under `basehub: jupyterhub:` (2i2c's daskhub) or
`daskhub: jupyterhub:` (a chart wrapping daskhub). A file that is still a template (Helm's
or Jinja's) is refused: it must be rendered first.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from ..config import yamlfile


class ConvertError(Exception):
    """A values file that cannot be converted; the message is one line, naming the file."""


# --- reading -----------------------------------------------------------------------------

# Helm (`{{ .Values.x }}`, `{{- if }}`) and Jinja (`{{ name }}`, `{% if %}`) templates; not
# KubeSpawner's `{{` escape of a literal brace (`'{{JUPYTER_IMAGE_SPEC}}'`), nor Python code
# in a block scalar (hub.extraConfig)
_TEMPLATE = re.compile(r"\{%|\{\{-|\{\{\s+[.$\w]")


def read_values(path: str | Path) -> dict:
    """One values file as data, read within the limits of `config/yamlfile.py`; a template,
    a file past a limit or anything but a YAML map is refused with a `ConvertError` naming
    the file. A key given twice keeps its last value, as Helm does."""
    templated = (
        f"{path}: a template (it has {{{{ ... }}}} or {{% ... %}}), not values: render it first "
        "(helm template, or your deployer), then convert the values it renders"
    )
    try:
        text = yamlfile.read_text(path, yamlfile.MAX_VALUES_BYTES)
    except yamlfile.YamlRefused as e:
        raise ConvertError(f"{path}: {e}") from None
    try:
        node, loader = yamlfile.compose(text, yamlfile.MAX_VALUES_BYTES, unique_keys=False)
        if node is not None and _templated(node):
            raise ConvertError(templated)
        data = yamlfile.construct(node, loader)
    except yamlfile.YamlRefused as e:
        if e.syntax and _TEMPLATE.search(text):
            raise ConvertError(templated) from None
        raise ConvertError(f"{path}: not YAML ({e})" if e.syntax else f"{path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: not a map of values (the file holds a {type(data).__name__})")
    return data


def _templated(node: yaml.Node) -> bool:
    """A template expression in a key or in a value that is not a block of text."""
    if isinstance(node, yaml.ScalarNode):
        return node.style not in ("|", ">") and bool(_TEMPLATE.search(node.value))
    if isinstance(node, yaml.MappingNode):
        return any(_templated(k) or _templated(v) for k, v in node.value)
    if isinstance(node, yaml.SequenceNode):
        return any(_templated(v) for v in node.value)
    return False


# --- layering ----------------------------------------------------------------------------


def merge(layers: list[dict]) -> dict:
    """Values layered as one chart's values files are: maps merged, the rest replaced,
    null removes at once. (The layering of `helm -f` files is `helm_values`.)"""
    merged: dict = {}
    for layer in layers:
        merged = _merged(merged, layer or {})
    return merged


def _merged(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def helm_values(layers: list[dict], chart_layers: int = 0) -> dict:
    """What Helm computes from the chart's values (the first `chart_layers`) and the user's
    `-f` files (the rest): the user's files merged in order (a later value replaces, `null`
    included, a map over a map merges), then coalesced with the chart's values, where a
    `null` left standing removes the chart's default."""
    user: dict = {}
    for layer in layers[chart_layers:]:
        user = _user_merged(user, layer or {})
    return _coalesced(user, merge(layers[:chart_layers]))


def _user_merged(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _user_merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _coalesced(user: dict, chart: dict) -> dict:
    out = copy.deepcopy(chart)
    for key, value in user.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = _coalesced(value, out[key] if isinstance(out.get(key), dict) else {})
        else:
            out[key] = copy.deepcopy(value)
    return out


# where each chart keeps zero-to-jupyterhub's values: z2jh itself, a chart wrapping it
# (2i2c's basehub, a university's course chart), 2i2c's daskhub, a chart wrapping daskhub
Z2JH_PATHS = ("", "jupyterhub", "basehub.jupyterhub", "daskhub.jupyterhub")

# zero-to-jupyterhub's own defaults (its values.yaml) for what is read here, below every
# other layer: the original hub has them whether or not its files repeat them
Z2JH_DEFAULTS = {
    "singleuser": {"memory": {"guarantee": "1G"}, "startTimeout": 300},
    "hub": {"concurrentSpawnLimit": 64},
    "cull": {
        "enabled": True,
        "users": False,
        "adminUsers": True,
        "timeout": 3600,
        "every": 600,
        "concurrency": 10,
        "maxAge": 0,
    },
}


def at(data: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path ('' is the whole)."""
    for key in path.split(".") if path else []:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def z2jh_path(values: dict) -> str:
    """Where the zero-to-jupyterhub values are in `values`: one of `Z2JH_PATHS`."""
    for path in Z2JH_PATHS:
        node = at(values, path)
        if isinstance(node, dict) and ("hub" in node or "singleuser" in node):
            return path
    for path in reversed(Z2JH_PATHS[1:]):
        if isinstance(at(values, path), dict):
            return path
    return ""


def placed(path: str, values: dict) -> dict:
    """`values` put at the dotted `path` ('' is the top), as a layer of the whole."""
    for key in reversed(path.split(".") if path else []):
        values = {key: values}
    return values
