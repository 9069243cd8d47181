"""What a server costs per hour (twoi2c_hub.catalog.pricing), against figures worked by hand."""

from datetime import date

import pytest

from twoi2c_hub.catalog import (
    INSTANCE_TYPES,
    GiB,
    InstancePrice,
    PriceTable,
    Pricing,
    PricingError,
    ServerResources,
    node_share_choices,
    user_capacity,
)

TABLE = PriceTable(
    effective=date(2026, 1, 1),
    cpu_core_hour=0.04,
    memory_gib_hour=0.005,
    gpu_hour={"nvidia-tesla-t4": 0.35, "*": 0.95},
    instances={"n2-highmem-4": InstancePrice(on_demand=0.2368, spot=0.0592)},
)
GPU_SERVER = ServerResources(3.5, 4.0, 14 * GiB, 14 * GiB, 1, "nvidia-tesla-t4")


def pricing(charge="requests", market="on_demand", tables=(TABLE,)) -> Pricing:
    return Pricing(currency="USD", tables=tuple(tables), charge=charge, market=market)


def test_resource_prices_charge_requests_or_limits():
    requests = pricing().hourly(GPU_SERVER, date(2026, 3, 1))
    # 3.5 cores x 0.04 + 14 GiB x 0.005 + 1 T4 x 0.35
    assert requests == pytest.approx((0.14, 0.07, 0.35))
    assert requests.total == pytest.approx(0.56)
    limits = pricing("limits").hourly(GPU_SERVER, date(2026, 3, 1))
    assert limits == pytest.approx((0.16, 0.07, 0.35))
    # a GPU type without its own price is charged the price for any GPU
    other = pricing().hourly(GPU_SERVER._replace(gpu_type="nvidia-l4"), date(2026, 3, 1))
    assert other.gpu == pytest.approx(0.95)


def test_a_limit_alone_stands_for_the_request():
    server = ServerResources(cpu_limit=2.0, mem_limit=4 * GiB)
    assert pricing().hourly(server, date(2026, 3, 1)) == pytest.approx((0.08, 0.02, 0.0))


def test_an_instance_price_is_split_as_opencost_splits_it():
    # ratios from the resource prices: CPU/RAM = 0.04/0.005 = 8
    # ram rate = 0.2368 / (4 cores x 8 + 32 GiB) = 0.0037 per GiB-hour; cpu rate = 0.0296
    rates = TABLE.split(0.2368, INSTANCE_TYPES["n2-highmem-4"])
    assert (rates.cpu, rates.memory) == pytest.approx((0.0296, 0.0037))
    assert 4 * rates.cpu + 32 * rates.memory == pytest.approx(0.2368)  # the whole machine costs its price
    server = ServerResources(1.0, 4.0, 8 * GiB, 8 * GiB, instance_type="n2-highmem-4")
    price = pricing().hourly(server, date(2026, 3, 1), INSTANCE_TYPES)
    assert price == pytest.approx((0.0296, 8 * 0.0037, 0.0))
    spot = pricing(market="spot").hourly(server, date(2026, 3, 1), INSTANCE_TYPES)
    assert spot.total == pytest.approx(price.total * 0.0592 / 0.2368)


def test_a_gpu_machine_split_uses_the_gpu_ratio():
    # a made-up machine: 4 cores, 16 GiB, one T4, $0.70 an hour
    from twoi2c_hub.catalog import InstanceType

    machine = InstanceType("g-test", "gcp", 4, 16 * GiB, gpu_count=1, gpu_type="nvidia-tesla-t4")
    rates = TABLE.split(0.70, machine)
    # GPU/RAM = 0.35/0.005 = 70, CPU/RAM = 8: ram = 0.70 / (70 + 32 + 16) = 0.70/118
    ram = 0.70 / 118
    assert rates == pytest.approx((8 * ram, ram, 70 * ram))
    assert rates.gpu + 4 * rates.cpu + 16 * rates.memory == pytest.approx(0.70)


def test_node_share_charges_the_share_of_the_node():
    instance = INSTANCE_TYPES["n2-highmem-4"]
    choices = node_share_choices(instance, 3)
    quarter, half, whole = (choice["kubespawner_override"] for choice in choices.values())  # smallest first
    _, offered = user_capacity(instance)
    assert whole["mem_guarantee"] == int(offered)

    def price(override):
        server = ServerResources(
            override["cpu_guarantee"],
            override["cpu_limit"],
            override["mem_guarantee"],
            override["mem_limit"],
            instance_type="n2-highmem-4",
        )
        return pricing("node_share").hourly(server, date(2026, 3, 1), INSTANCE_TYPES).total

    assert price(whole) == pytest.approx(0.2368, rel=1e-6)  # the whole node pays the node
    assert price(half) == pytest.approx(0.2368 / 2, rel=1e-6)
    assert price(quarter) == pytest.approx(0.2368 / 4, rel=1e-6)


def test_a_price_change_applies_from_its_date():
    later = PriceTable(effective=date(2026, 11, 15), cpu_core_hour=0.05, memory_gib_hour=0.005, gpu_hour={"*": 1.0})
    prices = pricing(tables=(later, TABLE))  # in any order
    assert prices.in_force(date(2026, 11, 14)) is TABLE
    assert prices.in_force(date(2026, 11, 15)) is later
    assert prices.hourly(GPU_SERVER, date(2026, 11, 14)).total == pytest.approx(0.56)
    assert prices.hourly(GPU_SERVER, date(2026, 11, 15)).total == pytest.approx(3.5 * 0.05 + 0.07 + 1.0)
    with pytest.raises(PricingError, match="no prices in force on 2025-12-31"):
        prices.hourly(GPU_SERVER, date(2025, 12, 31))


def test_what_cannot_be_priced_says_what_is_missing():
    no_gpu = PriceTable(effective=date(2026, 1, 1), cpu_core_hour=0.04, memory_gib_hour=0.005)
    with pytest.raises(PricingError, match="have no gpu_hour for nvidia-tesla-t4"):
        pricing(tables=(no_gpu,)).hourly(GPU_SERVER, date(2026, 3, 1))
    only_instances = PriceTable(effective=date(2026, 1, 1), instances=TABLE.instances)
    server = ServerResources(1.0, 2.0, GiB, GiB, instance_type="n2-highmem-8")
    with pytest.raises(PricingError, match="instance type n2-highmem-8 has no price and .* cpu_core_hour, memory_gib"):
        pricing(tables=(only_instances,)).hourly(server, date(2026, 3, 1), INSTANCE_TYPES)
