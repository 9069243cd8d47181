"""The `profiles:` and `instance_types:` sections: KubeSpawner's profile_list format with
`allowed_groups` and `node_share`, and capacity figures added to the built-in table.

A profile list is read as KubeSpawner 7.1 reads it: every key KubeSpawner or
jupyterhub-fancy-profiles reads is a field here, and any other key of a profile, an
option, a choice or a write-in is kept and handed to KubeSpawner unchanged, as
zero-to-jupyterhub does (`check-config` warns about it, see `overrides.profile_warnings`).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .. import catalog
from ..catalog.instances import INSTANCE_TYPES, InstanceType
from .base import SLUG_PATTERN, Strict, _check_groups, _error
from .yamlfile import shown


class Overridable(Strict):
    # keys nobody reads pass through, as in zero-to-jupyterhub (warned about, not refused)
    model_config = ConfigDict(extra="allow")

    # checked by `catalog_problems`, which reports every bad key with its own path
    kubespawner_override: dict[str, Any] = Field(default_factory=dict)
    """KubeSpawner settings this sets (image, cpu_limit, mem_guarantee, node_selector, ...)."""
    allowed_groups: list[str] | None = None
    """Only members of one of these groups are offered it (any case); absent: everyone."""

    @field_validator("allowed_groups")
    @classmethod
    def _valid_groups(cls, value):
        return _check_groups(value)


class Choice(Overridable):
    display_name: str
    """What the spawn form shows."""
    description: str | None = None
    """A line under the name on the form."""
    default: bool = False
    """Selected unless the person picks another."""
    slug: str | None = None
    """A name 2i2c's hubs give their choices; read by neither KubeSpawner 7.1 nor
    jupyterhub-fancy-profiles (a choice is named by its key), passed through unchanged."""


class UnlistedChoice(Overridable):
    enabled: bool = False
    """Let people write in a value (e.g. their own image)."""
    display_name: str | None = None
    """The label of the write-in field."""
    description: str | None = None
    """A line some hubs write for the write-in; read by neither KubeSpawner 7.1 nor
    jupyterhub-fancy-profiles (which show `description_in_choices`), passed through."""
    display_name_in_choices: str | None = None
    """How the write-in appears among the choices (default Other...)."""
    description_in_choices: str | None = None
    """jupyterhub-fancy-profiles' description of the write-in."""
    validation_regex: str | None = None
    """A written-in value must match this whole."""
    validation_message: str | None = None
    """What a person is told when it does not."""

    @field_validator("validation_regex")
    @classmethod
    def _compiles(cls, value):
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise _error(f"is not a valid regular expression: {e}") from None
        return value


class NodeShare(Strict):
    """`node_share: {instance: n2-highmem-16, choices: 5}` instead of five choices."""

    instance: str
    """The instance type shared (a built-in one or one under instance_types)."""
    choices: int = Field(ge=1, le=10)
    """How many shares: the whole node, half, a quarter, ..."""
    default: int | None = Field(default=None, ge=0)
    """Which share is the default (0 = the smallest)."""
    daemonset_cpu: float = Field(default=0.1, ge=0)
    """Cores the daemonsets on each node request."""
    daemonset_memory: str | int = "256M"
    """Memory the daemonsets on each node request."""
    allowed_groups: list[str] | None = None
    """Only members of one of these groups are offered these shares."""

    @field_validator("instance")
    @classmethod
    def _known_instance(cls, value, info):
        known = (info.context or {}).get("instance_types") or set(INSTANCE_TYPES)
        if value not in known:
            close = difflib.get_close_matches(value, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; describe it under instance_types"
            raise _error(f"unknown instance type '{value}'{hint}")
        return value

    @field_validator("daemonset_memory")
    @classmethod
    def _size(cls, value):
        try:
            catalog.parse_bytes(value)
        except Exception:
            raise _error(f"must be a size like 256M or 1G, not {shown(value)}") from None
        return value

    @field_validator("allowed_groups")
    @classmethod
    def _valid_groups(cls, value):
        return _check_groups(value)


class ProfileOption(Strict):
    model_config = ConfigDict(extra="allow")

    display_name: str
    """The option's label on the form."""
    choices: dict[str, Choice] = Field(default_factory=dict)
    """The choices, by key."""
    unlisted_choice: UnlistedChoice | None = None
    """A write-in value instead of a choice."""
    node_share: list[NodeShare] | None = None
    """Choices generated from instance types' capacity (one or a list)."""
    dynamic_image_building: dict[str, Any] | None = None
    """jupyterhub-fancy-profiles' image building settings (passed through)."""

    @field_validator("node_share", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _has_something_to_choose(self):
        enabled = self.unlisted_choice is not None and self.unlisted_choice.enabled
        if not self.choices and not self.node_share and not enabled:
            raise _error("an option needs choices, a node_share, or an enabled unlisted_choice")
        return self


class Profile(Overridable):
    display_name: str
    """The profile's name on the form."""
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)
    """Its name in the API and the form (default: made from display_name)."""
    description: str | None = None
    """A line under the name."""
    default: bool = False
    """Selected unless the person picks another."""
    profile_options: dict[str, ProfileOption] = Field(default_factory=dict)
    """Options within the profile (image, size, ...), by key."""

    @field_validator("profile_options")
    @classmethod
    def _option_keys(cls, value):
        for key in value:
            if not re.fullmatch(r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*", key):
                raise _error(
                    f"option name '{key}' must be letters, digits, '_' and single '-' "
                    "(it becomes part of the form field names)"
                )
        return value


class InstanceTypeSpec(Strict):
    provider: Literal["gcp", "aws", "azure", "other"] = "other"
    """Whose reservation rules compute what pods can have."""
    cpu: float = Field(gt=0)
    """vCPUs on the machine."""
    memory: str | int
    """Memory on the machine (e.g. 64G)."""
    allocatable_cpu: float | None = Field(default=None, gt=0)
    """Measured allocatable cores (wins over the computed figure)."""
    allocatable_memory: str | int | None = None
    """Measured allocatable memory (wins over the computed figure)."""
    gpu_count: int = Field(default=0, ge=0)
    """GPUs on the machine."""
    gpu_type: str | None = None
    """The GPU model."""
    node_label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
    """The value of `node.kubernetes.io/instance-type` its nodes carry, where node-share
    choices pin their pods (default: its name). Give it when the name is your own,
    e.g. `n2-highmem-16-measured` with `node_label: n2-highmem-16`."""

    @field_validator("memory", "allocatable_memory")
    @classmethod
    def _size(cls, value):
        if value is not None:
            try:
                size = catalog.parse_bytes(value)
            except Exception:
                raise _error(f"must be a size like 64G, not {shown(value)}") from None
            if size <= 0:
                raise _error("must be > 0")
        return value

    def to_instance_type(self, name: str) -> InstanceType:
        allocatable = self.allocatable_memory
        return InstanceType(
            name=name,
            provider=self.provider,
            cpu=self.cpu,
            memory_bytes=catalog.parse_bytes(self.memory),
            allocatable_cpu=self.allocatable_cpu,
            allocatable_memory_bytes=None if allocatable is None else catalog.parse_bytes(allocatable),
            gpu_count=self.gpu_count,
            gpu_type=self.gpu_type,
            node_label=self.node_label,
        )
