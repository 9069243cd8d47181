"""Writes `reference/community-config.md` from the community-config models at build time,
so the reference lists exactly the settings `check-config` accepts and cannot drift."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from twoi2c_hub.config.models import CommunityConfig

TITLE = "Community config reference"


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, tuple, set):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if args else "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation)).replace("Any", "any")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return ""
    else:
        value = field.default
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "(its defaults)"
    return f"`{json.dumps(value, default=str)}`"


def _models(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> None:
    if model.__name__ in seen:
        return
    seen[model.__name__] = model
    for field in model.model_fields.values():
        for candidate in _nested(field.annotation):
            _models(candidate, seen)


def _nested(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _nested(arg)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    models: dict[str, type[BaseModel]] = {}
    _models(CommunityConfig, models)
    lines = [
        f"# {TITLE}",
        "",
        "Generated from `twoi2c_hub/config/models.py` when the documentation is built. "
        "`twoi2c-hub check-config FILE` checks a file against exactly these settings.",
        "",
    ]
    for name, model in models.items():
        lines += [f"## {name}", "", _cell(model.__doc__ or ""), ""]
        lines += ["| setting | type | default | what it does |", "|---|---|---|---|"]
        for field_name, field in model.model_fields.items():
            key = field.alias or field_name
            lines.append(
                f"| `{key}` | {_cell(_type_name(field.annotation))} | {_cell(_default(field))} "
                f"| {_cell(field.description or '')} |"
            )
        lines.append("")
    return "\n".join(lines)


def write(app) -> None:
    target = Path(app.srcdir) / "reference" / "community-config.md"
    text = render()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app):
    app.connect("builder-inited", write)
    return {"parallel_read_safe": True, "version": "1"}
