"""What a server costs per hour: dated price tables, OpenCost's split of an instance's price.

Prices come per resource (a CPU core-hour, a memory GiB-hour, a GPU-hour by GPU type)
and/or per instance type (on-demand and spot per hour). A server on a priced instance
type is charged at rates split from that price the way OpenCost splits a node's price
(pkg/costmodel/costmodel.go): with the resource prices' ratios,

    ram_rate = node_price / (gpus * GPU/RAM + cores * CPU/RAM + memory_GiB)
    cpu_rate = ram_rate * CPU/RAM,   gpu_rate = ram_rate * GPU/RAM

so that the whole machine at those rates costs exactly its price. Other servers are
charged the resource prices. What is charged is set per hub: the requests (guarantees;
a limit alone stands for the request, as in Kubernetes), the limits, or for servers on a
shared instance type the share of the node (the memory guaranteed over what the node
offers user pods; a whole-node choice pays the whole node).

Every table has an effective date: a day is charged at the table in force that day, so a
price change applies from its date and a past month recomputes with the prices then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal, NamedTuple

from .instances import GiB, InstanceType
from .node_share import user_capacity

# OpenCost's configs/default.json, used for the split when a table has no resource prices
DEFAULT_CPU_CORE_HOUR = 0.031611
DEFAULT_MEMORY_GIB_HOUR = 0.004237
DEFAULT_GPU_HOUR = 0.95
ANY_GPU = "*"

Charge = Literal["requests", "limits", "node_share"]
Market = Literal["on_demand", "spot"]


class ServerResources(NamedTuple):
    """What one server asks for, as recorded with its session or resolved from a selection."""

    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: int | None = None  # bytes
    mem_limit: int | None = None
    gpu_count: int = 0
    gpu_type: str | None = None
    instance_type: str | None = None


class Rates(NamedTuple):
    """Money per core-hour, per GiB-hour of memory and per GPU-hour."""

    cpu: float
    memory: float
    gpu: float


# what budgets in resource-hours are called to people (budgets in money use the currency)
UNIT_NAMES = {
    "server_hours": "server-hours",
    "cpu_core_hours": "CPU core-hours",
    "memory_gib_hours": "memory GiB-hours",
    "gpu_hours": "GPU-hours",
}


def amount(value: float, unit: str, currency: str) -> str:
    """A figure in a budget's unit as people read it: money in the currency, to the cent;
    resource-hours named, to a tenth."""
    if unit == "money":
        return f"{value:,.2f} {currency}"
    return f"{value:,.1f} {UNIT_NAMES[unit]}"


class Quantities(NamedTuple):
    """What is charged for one hour: cores, GiB of memory, GPUs."""

    cpu: float
    memory_gib: float
    gpus: float


class HourlyPrice(NamedTuple):
    """A server's price per hour, in OpenCost's parts."""

    cpu: float
    ram: float
    gpu: float

    @property
    def total(self) -> float:
        return self.cpu + self.ram + self.gpu


@dataclass(frozen=True)
class InstancePrice:
    on_demand: float | None = None
    spot: float | None = None

    def hourly(self, market: Market) -> float | None:
        return self.spot if market == "spot" and self.spot is not None else self.on_demand


@dataclass(frozen=True)
class PriceTable:
    """The prices in force from `effective` (until the next table's date)."""

    effective: date
    cpu_core_hour: float | None = None
    memory_gib_hour: float | None = None
    gpu_hour: dict[str, float] = field(default_factory=dict)  # GPU type (or "*") -> price
    home_gib_month: float | None = None
    instances: dict[str, InstancePrice] = field(default_factory=dict)

    def gpu_rate(self, gpu_type: str | None) -> float | None:
        return self.gpu_hour.get(gpu_type or ANY_GPU, self.gpu_hour.get(ANY_GPU))

    def split(self, price: float, instance: InstanceType) -> Rates:
        """The rates at which `instance`'s whole capacity costs `price` (OpenCost's split)."""
        ram = self.memory_gib_hour or DEFAULT_MEMORY_GIB_HOUR
        cpu_to_ram = (self.cpu_core_hour or DEFAULT_CPU_CORE_HOUR) / ram
        gpu_to_ram = (self.gpu_rate(instance.gpu_type) or DEFAULT_GPU_HOUR) / ram
        ram_rate = price / (instance.gpu_count * gpu_to_ram + instance.cpu * cpu_to_ram + instance.memory_bytes / GiB)
        return Rates(ram_rate * cpu_to_ram, ram_rate, ram_rate * gpu_to_ram)


class PricingError(ValueError):
    """A server that the prices in force cannot price; the message says what is missing."""


@dataclass(frozen=True)
class Pricing:
    """A hub's prices: the currency, what is charged, and the dated tables."""

    currency: str
    tables: tuple[PriceTable, ...]
    charge: Charge = "requests"
    market: Market = "on_demand"

    def in_force(self, day: date) -> PriceTable | None:
        """The table in force on `day` (None before the first)."""
        current = None
        for table in sorted(self.tables, key=lambda t: t.effective):
            if table.effective > day:
                break
            current = table
        return current

    def hourly(
        self, server: ServerResources, day: date, instances: dict[str, InstanceType] | None = None
    ) -> HourlyPrice:
        """`server`'s price per hour on `day`; PricingError if it cannot be priced."""
        table = self.in_force(day)
        if table is None:
            raise PricingError(f"no prices in force on {day.isoformat()}")
        instance = (instances or {}).get(server.instance_type or "")
        rates = rates_for(table, server, instance, self.market)
        amounts = charged(server, self.charge, instance)
        return HourlyPrice(amounts.cpu * rates.cpu, amounts.memory_gib * rates.memory, amounts.gpus * rates.gpu)


def rates_for(table: PriceTable, server: ServerResources, instance: InstanceType | None, market: Market) -> Rates:
    """The rates a server is charged: its instance type's split price, else the resources'."""
    instance_price = table.instances.get(instance.name) if instance else None
    hourly = instance_price.hourly(market) if instance_price else None
    if instance is not None and hourly is not None:
        return table.split(hourly, instance)
    missing = []
    cpu = table.cpu_core_hour
    memory = table.memory_gib_hour
    gpu = table.gpu_rate(server.gpu_type) if server.gpu_count else 0.0
    if cpu is None and (server.cpu_guarantee or server.cpu_limit):
        missing.append("cpu_core_hour")
    if memory is None and (server.mem_guarantee or server.mem_limit):
        missing.append("memory_gib_hour")
    if gpu is None:
        missing.append(f"gpu_hour for {server.gpu_type or 'any GPU type'}")
    if missing:
        where = f"instance type {server.instance_type} has no price and " if server.instance_type else ""
        raise PricingError(f"{where}the prices from {table.effective.isoformat()} have no {', '.join(missing)}")
    return Rates(cpu or 0.0, memory or 0.0, gpu or 0.0)


def charged(server: ServerResources, charge: Charge, instance: InstanceType | None = None) -> Quantities:
    """The cores, GiB and GPUs charged for one hour of `server` under the hub's rule."""
    if charge == "node_share" and instance is not None and server.mem_guarantee:
        _, offered = user_capacity(instance)
        share = min(1.0, server.mem_guarantee / offered)
        return Quantities(share * instance.cpu, share * instance.memory_bytes / GiB, share * instance.gpu_count)
    if charge == "limits":
        cpu = server.cpu_limit if server.cpu_limit is not None else server.cpu_guarantee
        memory = server.mem_limit if server.mem_limit is not None else server.mem_guarantee
    else:  # requests; a limit alone stands for the request, as in Kubernetes
        cpu = server.cpu_guarantee if server.cpu_guarantee is not None else server.cpu_limit
        memory = server.mem_guarantee if server.mem_guarantee is not None else server.mem_limit
    return Quantities(cpu or 0.0, (memory or 0) / GiB, float(server.gpu_count or 0))


def cpu_and_memory_rates(table: PriceTable, instance: InstanceType | None, market: Market) -> Rates | None:
    """What a CPU core-hour and a memory GiB-hour of a server cost, to put a price on what
    it reserved but did not use: on a priced instance type, its price split OpenCost's way
    (`PriceTable.split`, the rates its cost is charged at; with no resource prices in the
    table, by OpenCost's default CPU:RAM ratio); else the resource prices. None where
    neither prices both (a hub priced only per instance type, for a server on none)."""
    instance_price = table.instances.get(instance.name) if instance else None
    hourly = instance_price.hourly(market) if instance_price else None
    if instance is not None and hourly is not None:
        return table.split(hourly, instance)
    if table.cpu_core_hour is None or table.memory_gib_hour is None:
        return None
    return Rates(table.cpu_core_hour, table.memory_gib_hour, 0.0)
