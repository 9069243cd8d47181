"""A server's summary: what a selection starts, in the one shape every part passes on.

The spawners build it (`ResolvedServer.summary()`), annotate their servers with it, post it
with a start event and send it with the budget check; the usage service records it and the
cost service checks the budget with it. Its fields carry their units (`mem_limit_bytes`,
`cpu_guarantee_cores`); on the wire it keeps the summary's own keys (`mem_limit`,
`cpu_guarantee`), as servers already annotated and spawners already deployed write them.

Each field's check names its problem in the words the services' 400 answers have always
used; pydantic supplies the path (`events[3].server.mem_limit`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WrapValidator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from .pricing import ServerResources

MAX_NAME_LENGTH = 255
MAX_IMAGE_LENGTH = 2000
MAX_CHOICES = 100


def problem(words: str) -> PydanticCustomError:
    """A field's problem, in the words a 400 answer gives."""
    return PydanticCustomError("event", "{problem}", {"problem": words})


def _amount(value: Any, *, whole: bool = False) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise problem("must be a number")
    # NaN fails both comparisons; an integer beyond a float's range is compared, not converted
    if not (0 <= value <= 1e15):
        raise problem("must be a finite number between 0 and 10^15")
    if whole:
        if value != int(value):
            raise problem("must be a whole number")
        return int(value)
    return float(value)


def _whole_amount(value: Any) -> int | None:
    return _amount(value, whole=True)


def text(value: Any, limit: int = MAX_NAME_LENGTH) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise problem(f"must be a string of at most {limit} characters")
    return value


def _long_text(value: Any) -> str | None:
    return text(value, MAX_IMAGE_LENGTH)


def _choices(value: Any, choices: ValidatorFunctionWrapHandler) -> dict[str, str | None]:
    if not value:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_CHOICES:
        raise problem(f"must be an object of at most {MAX_CHOICES} options")
    return choices(value)


Text = Annotated[str | None, PlainValidator(text)]
LongText = Annotated[str | None, PlainValidator(_long_text)]
Cores = Annotated[float | None, PlainValidator(_amount)]
Bytes = Annotated[int | None, PlainValidator(_whole_amount)]
Choices = Annotated[dict[Annotated[str, PlainValidator(text)], LongText], WrapValidator(_choices)]


class ServerSummary(BaseModel):
    """A server's profile, choices, image and resources, units in the field names."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    profile: Text = None
    choices: Choices = Field(None, validate_default=True)  # missing reads as {}
    image: LongText = None
    cpu_guarantee_cores: Cores = Field(None, alias="cpu_guarantee")
    cpu_limit_cores: Cores = Field(None, alias="cpu_limit")
    mem_guarantee_bytes: Bytes = Field(None, alias="mem_guarantee")
    mem_limit_bytes: Bytes = Field(None, alias="mem_limit")
    gpu_count: Annotated[int, PlainValidator(lambda v: _whole_amount(v) or 0)] = 0
    gpu_type: Text = None
    instance_type: Text = None

    def resources(self) -> ServerResources:
        """What the server asks for, as the prices and budgets read it."""
        return ServerResources(
            cpu_guarantee=self.cpu_guarantee_cores,
            cpu_limit=self.cpu_limit_cores,
            mem_guarantee=self.mem_guarantee_bytes,
            mem_limit=self.mem_limit_bytes,
            gpu_count=self.gpu_count,
            gpu_type=self.gpu_type,
            instance_type=self.instance_type,
        )

    def wire(self) -> dict[str, Any]:
        """The JSON-able summary with its wire keys: a pod's annotation, an event's `server`,
        the budget check's `server`."""
        return self.model_dump(by_alias=True)
