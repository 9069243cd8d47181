"""The fleet config: check-config tells it from a community config and prints every
problem with its path; the example passes; the docs name every setting."""

import re
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from fuzzing import fuzz, json_value
from hypothesis import given
from hypothesis import strategies as st

from twoi2c_hub.cli import main
from twoi2c_hub.config import ConfigError, parse_config
from twoi2c_hub.config.fleet import FleetConfig, _models, parse_fleet
from twoi2c_hub.paths import examples_dir

# in a folder of its own: every examples/*.yaml is a community config (tests/test_kube_spawner.py)
EXAMPLE = Path(__file__).parent.parent / "examples" / "fleet" / "fleet.yaml"
DOCS = Path(__file__).parent.parent / "docs" / "fleet.md"

SMALL = """\
fleet: {name: Op, secret_env: FLEET_SECRET}
clusters:
  - {name: east, bills: [east.csv]}
  - {name: west, monthly_cost: 600, shared_cost: fixed, shares: {ocean: 0.25, climate: 0.75}}
communities:
  - {name: ocean, fee: 400}
  - {name: climate, fee: from_hub}
hubs:
  - {name: ocean-prod, community: ocean, cluster: east, url: https://ocean.example.org, token_env: T_OCEAN}
  - {name: ocean-west, community: ocean, cluster: west, archive: ocean-west.tar}
  - {name: climate, community: climate, cluster: west, url: https://climate.example.org, token_env: T_CLIMATE}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        parse_fleet(textwrap.dedent(text))
    return failed.value.errors


def changed(old: str, new: str) -> str:
    assert old in SMALL, old
    return SMALL.replace(old, new)


def test_the_example_fleet_passes_check_config(capsys):
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == f"{EXAMPLE}: OK (a fleet of 6 hubs on 2 clusters, 4 communities)\n"


def test_a_community_config_is_still_checked_as_one(capsys):
    assert main(["check-config", str(examples_dir() / "demo-community.yaml")]) == 0
    assert "OK (2 profiles, 6 choices)" in capsys.readouterr().out


def test_the_config_gives_the_figures_their_plain_data():
    config = parse_fleet(SMALL)
    placement = {"ocean-prod": ("east", "ocean"), "ocean-west": ("west", "ocean"), "climate": ("west", "climate")}
    assert config.placement() == placement
    assert config.sharing() == {
        "east": ("by_attributed_cost", {}),
        "west": ("fixed", {"ocean": Decimal("0.25"), "climate": Decimal("0.75")}),
    }
    assert config.fees() == {"ocean": Decimal("400"), "climate": "from_hub"}


def test_check_config_prints_every_error_with_its_path(tmp_path, capsys):
    broken = tmp_path / "fleet.yaml"
    broken.write_text(
        textwrap.dedent("""\
        fleet: {name: Op, secret_env: 1SECRET, curency: EUR}
        clusters:
          - {name: east, bills: [east.csv], monthly_cost: 3}
          - {name: west, monthly_cost: -600}
          - {name: north, monthly_cost: 1, shared_cost: fixed, shares: {ocean: 1.5}}
          - {name: south, monthly_cost: 1, shared_cost: even, shares: {ocean: 1}}
          - {name: up, monthly_cost: 1, shared_cost: by_hours}
        communities:
          - {name: ocean, fee: lots}
          - {name: climate, fee: -3}
        hubs:
          - {name: ocean-prod, community: ocean, cluster: east, url: ftp://ocean.example.org, token_env: T}
          - {name: ocean-west, community: ocean, cluster: west}
          - {name: climate, community: climate, cluster: west, url: https://climate.example.org, tokn_env: T}
    """)
    )
    assert main(["check-config", str(broken)]) == 1
    p = f"{broken}: "
    assert capsys.readouterr().err.splitlines() == [
        p + "fleet.secret_env: must be an environment variable's name: letters, digits and _, "
        "not starting with a digit",
        p + "fleet.curency: is not a known setting (did you mean 'currency'?)",
        p + "clusters[0]: give bills (the imported cloud bills) or monthly_cost, one of the two",
        p + "clusters[1].monthly_cost: must be >= 0",
        p + "clusters[2].shares.ocean: must be <= 1",
        p + "clusters[3]: shares apply only with shared_cost: fixed (this cluster's is even)",
        p + "clusters[4].shared_cost: must be one of 'by_attributed_cost', 'even' or 'fixed'",
        p + "communities[0].fee: must be an amount per month, or from_hub",
        p + "communities[1].fee: must be an amount per month from 0 to 1,000,000,000,000, or from_hub",
        p + "hubs[0].url: must be the hub's http(s) address, like https://hub.example.org, "
        "not 'ftp://ocean.example.org'",
        p + "hubs[1]: give url and token_env (a running hub), archive (a hub that left), or both",
        p + "hubs[2].tokn_env: is not a known setting (did you mean 'token_env'?)",
        f"12 error(s) in {broken}",
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            changed("cluster: east, url", "cluster: eats, url"),
            ["hubs[0].cluster: no cluster 'eats' under clusters (did you mean 'east'?)"],
        ),
        (
            changed("community: climate, cluster", "community: climat, cluster"),
            [
                "hubs[2].community: no community 'climat' under communities (did you mean 'climate'?)",
                "clusters[1].shares.climate: no hub of 'climate' runs on west (the communities on it: ocean)",
                "communities[1]: 'climate' has no hub: add its hubs under hubs, or remove it",
            ],
        ),
        (
            changed("{ocean: 0.25, climate: 0.75}", "{ocean: 0.25, climate: 0.7}"),
            ["clusters[1]: shares must sum to 1; they sum to 0.95"],
        ),
        (
            changed("{ocean: 0.25, climate: 0.75}", "{ocean: 0.25, climate: 0.5, seismo: 0.25}"),
            ["clusters[1].shares.seismo: no hub of 'seismo' runs on west (the communities on it: climate, ocean)"],
        ),
        (
            changed("shared_cost: fixed, shares: {ocean: 0.25, climate: 0.75}", "shared_cost: fixed"),
            ["clusters[1]: shared_cost: fixed needs shares (each community's fraction, summing to 1)"],
        ),
        (
            changed("{name: climate, community", "{name: ocean-prod, community"),
            ["hubs[2].name: 'ocean-prod' is also the name of hubs[0]; give one another name"],
        ),
        (
            changed("archive: ocean-west.tar", "url: https://w.example.org"),
            ["hubs[1]: give url and token_env together: the fleet reads the hub's APIs with that token"],
        ),
        (
            changed("{name: Op, secret_env: FLEET_SECRET}", "{name: Op, secret_env: FLEET_SECRET, currency: usd}"),
            ["fleet.currency: must be an ISO 4217 code, like USD"],
        ),
        (
            changed("{name: ocean, fee: 400}", "{name: ocean, fee: 400, budget: -5}"),
            ["communities[0].budget: must be >= 0"],
        ),
        (
            "fleet: {name: Op, secret_env: S}\n",
            ["clusters: is required", "communities: is required", "hubs: is required"],
        ),
        ("- a list\n", ["the file must be a mapping of sections (fleet:, clusters:, communities:, hubs:)"]),
        (
            "fleet: {name: Op}\nfleet: {name: Op}\n",
            ["line 2, column 1: not valid YAML: the key 'fleet' is given twice"],
        ),
    ],
)
def test_each_kind_of_mistake_has_a_message(text, expected):
    assert errors_of(text) == expected


def test_a_fleet_file_without_its_fleet_key_is_read_as_one_with_the_flag(tmp_path, capsys):
    path = tmp_path / "fleet.yaml"
    path.write_text(SMALL.replace("fleet: {name: Op, secret_env: FLEET_SECRET}\n", ""))
    assert main(["check-config", "--fleet", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"{path}: fleet: is required", f"1 error(s) in {path}"]


def test_the_community_configs_suggestions_do_not_offer_fleet_settings():
    with pytest.raises(ConfigError) as failed:
        parse_config("hub: {name: X, shared_cots: 1}\n")
    assert failed.value.errors == ["hub.shared_cots: is not a known setting"]


def test_the_docs_name_every_fleet_setting():
    docs = DOCS.read_text()
    missing = [
        f"{model.__name__}.{name}"
        for model in _models(FleetConfig)
        for name in model.model_fields
        if not re.search(rf"`{name}[`:]", docs)
    ]
    assert not missing


PLACES = [("fleet",), ("clusters",), ("clusters", 1), ("clusters", 1, "shares"), ("communities", 0, "fee")]
PLACES += [("hubs", 0), ("hubs", 2, "url"), ("hubs", 1, "community")]


@fuzz(40)
@given(st.sampled_from(PLACES), json_value)
def test_any_data_anywhere_is_checked_or_refused_never_a_traceback(place, value):
    data = yaml.safe_load(SMALL)
    node = data
    for step in place[:-1]:
        node = node[step]
    node[place[-1]] = value
    try:
        parse_fleet(yaml.safe_dump(data))
    except ConfigError as e:
        assert e.errors and all(line.strip() and "\n" not in line for line in e.errors)
