"""The events as the spawners and the authenticator post them: a pydantic discriminated
union on `type` (`StartPosted`, `StopPosted`, `GroupsPosted`; a server is the catalog's
`ServerSummary`, its fields with their units, read from the summary's own keys). A
request body is checked with one `TypeAdapter`, and each event becomes the typed event
`recording.record` takes, or the first problem an `EventError` naming its field.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainValidator, TypeAdapter, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from ..catalog.summary import MAX_NAME_LENGTH, ServerSummary, problem
from .events import (
    EARLIEST_MS,
    LATEST_MS,
    MAX_GROUPS,
    Event,
    EventError,
    GroupsChanged,
    ServerStart,
    ServerStarted,
    ServerStopped,
)
from .models import STOP_REASONS, to_ms

# Each field's check is one function that names its problem in the words the 400 answers
# have always used; pydantic supplies the path (`events[3].server.mem_limit`).


_problem = problem


def _time_ms(value: Any) -> int:
    """Epoch ms from the hub's ISO 8601 times ('2026-11-26T07:00:00.123456Z') or epoch ms."""
    if isinstance(value, bool):
        raise _problem("must be a time, not true or false")
    if isinstance(value, int):
        ms = value  # compared as it is: an integer too large for a float is out of range, not a crash
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _problem("must be a finite number of milliseconds")
        ms = int(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _problem(f"'{value[:40]}' is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = to_ms(moment)
    else:
        raise _problem("must be an ISO 8601 time or epoch milliseconds")
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise _problem("must be between the years 2000 and 2200")
    return ms


def _time_or_none(value: Any) -> int | None:
    return None if value is None else _time_ms(value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _problem("must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise _problem(f"must be at most {MAX_NAME_LENGTH} characters")
    return value


def _server_name(value: Any) -> str:
    """A named server's name; "" (or null) is the default server."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _problem("must be a string")
    if len(value) > MAX_NAME_LENGTH:
        raise _problem(f"must be at most {MAX_NAME_LENGTH} characters")
    return value


def _names(value: Any, names: ValidatorFunctionWrapHandler) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _problem("must be a list of names")
    if len(value) > MAX_GROUPS:
        raise _problem(f"must have at most {MAX_GROUPS} names")
    return names(value)  # each name checked, its index in the path


Name = Annotated[str, PlainValidator(_name)]
ServerName = Annotated[str, PlainValidator(_server_name)]
Names = Annotated[list[Name], WrapValidator(_names)]
TimeMs = Annotated[int, PlainValidator(_time_ms)]


def _checked(**kwargs: Any) -> Any:
    """A field whose check also runs when it is missing (missing reads as null, as it always has)."""
    return Field(validate_default=True, **kwargs)


class StartPosted(BaseModel):
    type: Literal["start"]
    username: Name = _checked(default=None)
    server: ServerSummary | None = None
    server_name: ServerName = _checked(default=None)
    started_ms: TimeMs = _checked(default=None, alias="started")
    groups: Names = _checked(default=None)

    def event(self, now_ms: int) -> ServerStarted:
        summary = self.server or ServerSummary()  # none: a server of unknown resources
        return ServerStarted(
            ServerStart.from_summary(self.username, self.server_name, self.started_ms, summary, self.groups)
        )


class StopPosted(BaseModel):
    type: Literal["stop"]
    username: Name = _checked(default=None)
    reason: Annotated[str, PlainValidator(lambda v: _reason(v))] = _checked(default="user")
    server_name: ServerName = _checked(default=None)
    stopped_ms: TimeMs = _checked(default=None, alias="stopped")
    started_ms: Annotated[int | None, PlainValidator(_time_or_none)] = Field(None, alias="started")

    def event(self, now_ms: int) -> ServerStopped:
        return ServerStopped(self.username, self.server_name, self.stopped_ms, self.reason, self.started_ms)


def _reason(value: Any) -> str:
    if value not in STOP_REASONS:
        raise _problem(f"must be one of {', '.join(STOP_REASONS)}")
    return value


class GroupsPosted(BaseModel):
    type: Literal["groups"]
    username: Name = _checked(default=None)
    at_ms: Annotated[int | None, PlainValidator(_time_or_none)] = Field(None, alias="at")
    groups: Names | None = None  # absent: only what was added and removed is told
    added: Names = _checked(default=None)
    removed: Names = _checked(default=None)

    def event(self, now_ms: int) -> GroupsChanged:
        return GroupsChanged(
            username=self.username,
            at_ms=now_ms if self.at_ms is None else self.at_ms,
            # null groups were always read as "in no group", absent ones as "unchanged"
            groups=frozenset(self.groups or ()) if "groups" in self.model_fields_set else None,
            added=frozenset(self.added),
            removed=frozenset(self.removed),
        )


EventPosted = Annotated[StartPosted | StopPosted | GroupsPosted, Field(discriminator="type")]
_TAGS = ("start", "stop", "groups")
_POSTED = TypeAdapter(list[EventPosted])
_SUMMARY = TypeAdapter(ServerSummary)
# a missing field's check reports the Python name: the path names the wire's
_WIRE_NAMES = {
    name: field.alias
    for model in (ServerSummary, StartPosted, StopPosted, GroupsPosted)
    for name, field in model.model_fields.items()
    if field.alias
}


def _path(where: str, loc: tuple) -> str:
    parts = list(loc)
    if len(parts) > 1 and isinstance(parts[0], int) and parts[1] in _TAGS:
        del parts[1]  # the union's tag, not a field
    path = where
    for i, part in enumerate(parts):
        if part == "[key]" or (i + 1 < len(parts) and parts[i + 1] == "[key]"):
            continue  # a choice's name: its object is the field
        path += f"[{part}]" if isinstance(part, int) else f".{_WIRE_NAMES.get(part, part)}"
    return path


def _event_error(error: ValidationError, where: str) -> EventError:
    """The first problem pydantic found, as EventError with the field's path."""
    first = error.errors(include_url=False)[0]
    path, value = _path(where, first["loc"]), first["input"]
    if first["type"] == "event":
        return EventError(path, first["msg"], value)
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return EventError(path + ".type", "must be start, stop or groups", value)
    return EventError(path, "must be an object", value)  # a model given another kind of value


def parse_events(body: Any, *, now_ms: int) -> list[Event]:
    """The typed events in a request body (one event or a list of them, as JSON decoded), all
    checked at once; EventError for the first malformed one (`events[i]...`)."""
    raw_events = body if isinstance(body, list) else [body]
    try:
        posted = _POSTED.validate_python(raw_events)
    except ValidationError as e:
        raise _event_error(e, "events") from None
    return [p.event(now_ms) for p in posted]


def parse_event(raw: Any, where: str = "event", *, now_ms: int) -> Event:
    """The typed event in one JSON object the spawners posted; EventError if malformed."""
    try:
        (posted,) = _POSTED.validate_python([raw])
    except ValidationError as e:
        error = _event_error(e, "")
        raise EventError(where + error.field[len("[0]") :], error.problem) from None
    return posted.event(now_ms)


def parse_server_summary(raw: Any, where: str = "server") -> ServerSummary:
    """A server summary on its own (the budget check's `server`); EventError if malformed."""
    try:
        return _SUMMARY.validate_python(raw)
    except ValidationError as e:
        raise _event_error(e, where) from None


def parse_time(value: Any, where: str) -> int:
    """Epoch ms from the hub's ISO 8601 times or epoch ms; EventError naming `where` if not."""
    try:
        return _time_ms(value)
    except PydanticCustomError as e:
        raise EventError(where, e.message()) from None
