"""Node-share choices: one instance type shared between people, smallest share first."""

from __future__ import annotations

import re
from typing import Any

from .instances import GiB, InstanceType, MiB


def _memory_label(memory_bytes: float) -> str:
    if memory_bytes < GiB:
        return f"{memory_bytes / MiB:.0f} MiB"
    gib = memory_bytes / GiB
    return f"{gib:.0f} GiB" if gib >= 10 else f"{gib:.1f} GiB".replace(".0 ", " ")


def _cpu_label(cores: float) -> str:
    return f"{cores:.1f}" if cores < 2 else f"{cores:.0f}"


def user_capacity(
    instance: InstanceType, *, daemonset_cpu: float = 0.1, daemonset_memory_bytes: int = 256 * MiB
) -> tuple[float, float]:
    """(cores, bytes) of a node that user pods can have: allocatable capacity less the
    daemonsets' requests, less a safety margin of 2% (at most 2 GiB / 1 CPU) for
    daemonsets added later. The largest node-share choice is all of it."""
    cpu, memory = instance.allocatable()
    cpu -= daemonset_cpu
    memory -= daemonset_memory_bytes
    cpu -= min(cpu * 0.02, 1.0)
    memory -= min(memory * 0.02, 2 * GiB)
    if cpu <= 0 or memory <= 0:
        raise ValueError(f"instance type {instance.name} has no capacity left for user pods")
    return cpu, memory


def node_share_choices(
    instance: InstanceType,
    count: int,
    *,
    daemonset_cpu: float = 0.1,
    daemonset_memory_bytes: int = 256 * MiB,
    default: int | None = None,
) -> dict[str, dict]:
    """Choices that share one instance type between people, smallest first.

    The largest choice is the whole node as pods can have it (`user_capacity`). Each
    further choice halves the memory. Memory guarantee
    equals its limit (no memory overcommit); the CPU guarantee is proportional to the
    memory share, and the CPU limit is the whole node, so an idle node is not wasted.
    This is 2i2c's "proportional memory" strategy.

    `default` is the index (0 = smallest) of the choice selected by default.
    """
    if count < 1:
        raise ValueError("node_share needs at least one choice")
    cpu, memory = user_capacity(instance, daemonset_cpu=daemonset_cpu, daemonset_memory_bytes=daemonset_memory_bytes)

    choices: list[tuple[str, dict]] = []
    for i in range(count):
        mem_limit = memory / 2**i
        cpu_guarantee = cpu * mem_limit / memory
        label = _memory_label(mem_limit)
        override: dict[str, Any] = {
            "mem_guarantee": int(mem_limit),
            "mem_limit": int(mem_limit),
            "cpu_guarantee": round(cpu_guarantee, 3),
            "cpu_limit": round(cpu, 3),
            "node_selector": {"node.kubernetes.io/instance-type": instance.label_value},
        }
        if instance.gpu_count:
            override["extra_resource_limits"] = {"nvidia.com/gpu": str(instance.gpu_count)}
        # plain words: the person chooses how much, not which machine type
        description = (
            f"Up to ~{_cpu_label(cpu)} CPUs when the machine is not busy"
            if i
            else f"~{_cpu_label(cpu)} CPUs always available: a whole machine to yourself"
        )
        key = "mem_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        choices.append(
            (
                key,
                {
                    "display_name": f"~{label} RAM, ~{_cpu_label(cpu_guarantee)} CPUs",
                    "description": description,
                    "kubespawner_override": override,
                },
            )
        )
    choices.reverse()
    result = dict(choices)
    if default is not None:
        if not 0 <= default < len(choices):
            raise ValueError(f"node_share default must be between 0 and {len(choices) - 1}")
        result[choices[default][0]]["default"] = True
    return result
