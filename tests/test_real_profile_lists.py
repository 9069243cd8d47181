"""Profile lists as real zero-to-jupyterhub hubs write them load as KubeSpawner 7.1 loads
them, and start the same pods.

The shapes are our own YAML, written after what a study of public hub configurations
found (2i2c's hubs and others): choices with a `slug`, write-ins with a `description`,
`default: true` inside a kubespawner_override, keys of a site's own that nothing reads,
fancy-profiles' keys, and node selectors set at the hub, the profile and the choice.
Pods are built by KubeSpawner itself from the original list and by ProfileKubeSpawner
from the community config, and compared.
"""

import copy
import re
import subprocess
import sys
import textwrap
from datetime import date
from types import SimpleNamespace

import pytest
import yaml
from kube_schemas import validate
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from kubespawner.utils import recursive_update
from traitlets import TraitError
from traitlets.config import Config

from twoi2c_hub import catalog
from twoi2c_hub.catalog.instances import INSTANCE_TYPES
from twoi2c_hub.config import ConfigError, load_config, parse_config
from twoi2c_hub.paths import examples_dir
from twoi2c_hub.spawners.kube import ProfileKubeSpawner

INSTANCE_LABEL = "node.kubernetes.io/instance-type"

# a hub's profile list in the shapes the corpus taught us (2i2c's style)
PROFILE_LIST = yaml.safe_load(
    textwrap.dedent("""\
    - display_name: Small
      slug: small
      description: A few cores to explore with
      default: true
      kubespawner_override:
        default: true                      # meant beside the override; KubeSpawner setattr's it
        node_selector: {node.kubernetes.io/instance-type: r5.xlarge}
      profile_options:
        image:
          display_name: Image
          choices:
            pangeo:
              display_name: Pangeo
              slug: pangeo                 # 2i2c names its choices; nothing reads it
              default: true
              kubespawner_override: {image: "pangeo/pangeo-notebook:2024.01.01"}
            rocker:
              display_name: Rocker
              slug: rocker
              kubespawner_override:
                image: "rocker/binder:4.3"
                default_url: /rstudio
                environment: {R_LIBS_USER: /home/rstudio/lib}
          unlisted_choice:
            enabled: true
            display_name: "Custom image"
            description: "Any public image"   # nothing reads it either
            display_name_in_choices: "Specify an existing image"
            description_in_choices: "An image of your own"
            validation_regex: "^.+:.+$"
            validation_message: "Give a tag"
            kubespawner_override: {image: "{value}"}
          dynamic_image_building: {enabled: true}
        size:
          display_name: Size
          choices:
            mem_4:
              display_name: 4 GB
              kubespawner_override: {mem_guarantee: 3.6G, mem_limit: 4G, cpu_guarantee: 0.4, cpu_limit: 4}
            mem_16:
              display_name: 16 GB
              kubespawner_override:
                mem_guarantee: 14G
                mem_limit: 16G
                node_selector: {node.kubernetes.io/instance-type: r5.2xlarge}
                default: true              # at choice level too
    - display_name: GPU
      slug: gpu
      site_colour: green                   # a site's own key: passed through, warned about
      kubespawner_override:
        image: "pangeo/ml-notebook:2024.01.01"
        mem_limit: 16G
        node_selector: {node.kubernetes.io/instance-type: g4dn.xlarge, example.org/pool: null}
        extra_resource_limits: {nvidia.com/gpu: "1"}
        tolerations: [{key: nvidia.com/gpu, operator: Equal, value: present, effect: NoSchedule}]
    """)
)

# the hub's singleuser defaults (z2jh: singleuser.nodeSelector, .image, .memory)
HUB_DEFAULTS = {
    "image": "quay.io/example/base:1",
    "mem_guarantee": "1G",
    "node_selector": {"example.org/hub-name": "research", "example.org/pool": "users"},
    "environment": {"SCRATCH_BUCKET": "s3://scratch/$(JUPYTERHUB_USER)"},
}


def community(profile_list, **sections) -> str:
    return yaml.safe_dump({"hub": {"name": "Research"}, "profiles": profile_list, **sections}, sort_keys=False)


def user(groups=()):
    return SimpleNamespace(
        name="ada", id=3, url="/user/ada/", admin=False, groups=[SimpleNamespace(name=g) for g in groups]
    )


async def pod_of(cls, profile_list, selection, defaults, groups=()):
    c = Config()
    getattr(c, cls.__name__).profile_list = profile_list
    for key, value in defaults.items():
        setattr(getattr(c, cls.__name__), key, copy.deepcopy(value))
    spawner = cls(_mock=True, user=user(groups), config=c)
    spawner.user_options = selection
    await spawner.load_user_options()
    async with ApiClient() as api:
        pod = {"apiVersion": "v1", "kind": "Pod", **api.sanitize_for_serialization(await spawner.get_pod_manifest())}
    validate(pod)
    container = pod["spec"]["containers"][0]
    return {
        "image": container["image"],
        "resources": container.get("resources"),
        "env": {e["name"]: e.get("value") for e in container.get("env", [])},
        "node_selector": pod["spec"].get("nodeSelector"),
        "tolerations": pod["spec"].get("tolerations"),
        "volumes": pod["spec"].get("volumes"),
        "volume_mounts": container.get("volumeMounts"),
    }


def selections(profile_list):
    """Every profile alone, with each choice of each option, and with a write-in."""
    for profile in catalog.initialize(profile_list):
        yield {"profile": profile["slug"]}
        for key, option in profile.get("profile_options", {}).items():
            for choice in option.get("choices", {}):
                yield {"profile": profile["slug"], key: choice}
            if option["unlisted_choice"]["enabled"]:
                yield {"profile": profile["slug"], key + "--unlisted-choice": "quay.io/me/mine:2"}


def folded(profile_list, defaults):
    """The hub's defaults carried into each profile as KubeSpawner applies them (what a
    converted config holds): the profile's override merged onto the defaults."""
    result = copy.deepcopy(profile_list)
    for profile in result:
        merged = copy.deepcopy(defaults)
        catalog.merge_override(merged, profile.get("kubespawner_override") or {})
        profile["kubespawner_override"] = merged
    return result


# --- loading ------------------------------------------------------------------------


def test_a_real_hubs_profile_list_loads_and_comes_out_as_it_went_in():
    config = parse_config(community(PROFILE_LIST))
    assert config.profile_list() == PROFILE_LIST


def test_keys_nobody_reads_are_warnings_with_their_paths_never_suggesting_themselves():
    config = parse_config(community(PROFILE_LIST))
    assert config.warnings == [
        "profiles[0].kubespawner_override.default: is not a KubeSpawner setting: KubeSpawner sets it on "
        "the spawner, where nothing reads it (as a key beside kubespawner_override, default would be read)",
        "profiles[0].profile_options.size.choices.mem_16.kubespawner_override.default: is not a KubeSpawner "
        "setting: KubeSpawner sets it on the spawner, where nothing reads it (as a key beside "
        "kubespawner_override, default would be read)",
        "profiles[1].site_colour: is read by neither KubeSpawner, jupyterhub-fancy-profiles nor twoi2c-hub: "
        "kept and passed on unchanged",
    ]
    for warning in config.warnings:
        key = re.match(r"\S*\.([^.:]+):", warning).group(1)
        assert f"did you mean '{key}'" not in warning


@pytest.mark.parametrize(
    "where, key",
    [
        ("profile", "slugg"),
        ("choice", "slugs"),
        ("unlisted", "descriptions"),
        ("override", "defaults"),
        ("override", "node_selectors"),
    ],
)
def test_a_suggestion_is_another_key_never_the_one_written(where, key):
    profile = {"display_name": "A", "profile_options": {"o": {"display_name": "O", "choices": {"c": {}}}}}
    choice = {"display_name": "C", "kubespawner_override": {}}
    unlisted = {"enabled": True}
    profile["profile_options"]["o"]["choices"]["c"] = choice
    profile["profile_options"]["o"]["unlisted_choice"] = unlisted
    target = {"profile": profile, "choice": choice, "unlisted": unlisted, "override": choice["kubespawner_override"]}
    target[where][key] = "x"
    (warning,) = parse_config(community([profile])).warnings
    mentioned = re.findall(r"did you mean '([^']+)'", warning)
    assert mentioned and key not in mentioned


@pytest.mark.slow
def test_check_config_prints_warnings_and_exits_0(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text(community(PROFILE_LIST))
    result = subprocess.run(
        [sys.executable, "-m", "twoi2c_hub.cli", "check-config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert f"{path}: OK (2 profiles, 4 choices)" in result.stdout
    assert f"{path}: warning: profiles[1].site_colour: is read by neither" in result.stderr
    assert len(result.stderr.splitlines()) == 3


# what check-config refuses is what stops KubeSpawner's own start; what it lets through
# with a warning, KubeSpawner starts
BREAKS_A_START = [
    ({"start_timeout": "soon"}, "kubespawner_override.start_timeout: must be an int, not 'soon'"),
    ({"node_selector": None}, "kubespawner_override.node_selector: must be a mapping of names to values"),
    ({"my_site_settings": {"a": 1}}, "kubespawner_override.my_site_settings: is not a KubeSpawner setting, and"),
    ({"tolerations": "gpu"}, "kubespawner_override.tolerations: must be a list or a dict, not 'gpu'"),
]


@pytest.mark.parametrize("override, message", BREAKS_A_START)
async def test_an_override_that_stops_kubespawners_start_is_an_error(override, message):
    profile_list = [{"display_name": "A", "kubespawner_override": override}]
    with pytest.raises(ConfigError) as failed:
        parse_config(community(profile_list))
    assert any(message in e for e in failed.value.errors), failed.value.errors
    with pytest.raises((TraitError, AttributeError, TypeError)):
        await pod_of(KubeSpawner, profile_list, {"profile": "a"}, {})


@pytest.mark.parametrize(
    "override", [{"default": True}, {"my_site_setting": "x"}, {"default_url": "/lab", "colour": ["a"]}]
)
async def test_an_override_key_kubespawner_merely_sets_is_a_warning_and_the_pod_starts(override):
    profile_list = [{"display_name": "A", "kubespawner_override": {"image": "a:1", **override}}]
    config = parse_config(community(profile_list))
    assert config.warnings
    ours = await pod_of(ProfileKubeSpawner, config.profile_list(), {"profile": "a"}, {})
    assert ours == await pod_of(KubeSpawner, profile_list, {"profile": "a"}, {})


async def test_several_defaults_are_a_warning_and_the_first_is_selected_as_kubespawner_does():
    profile_list = yaml.safe_load(
        textwrap.dedent("""\
        - display_name: A
          default: true
          profile_options:
            image:
              display_name: Image
              choices:
                one: {display_name: One, kubespawner_override: {image: "one:1"}}
                two: {display_name: Two, default: true, kubespawner_override: {image: "two:1"}}
                three: {display_name: Three, default: true, kubespawner_override: {image: "three:1"}}
        - display_name: B
          default: true
          kubespawner_override: {image: "b:1"}
        """)
    )
    config = parse_config(community(profile_list))
    assert config.warnings == [
        "profiles: 2 profiles say default: KubeSpawner (and this hub) selects the first, profiles[0]",
        "profiles[0].profile_options.image.choices: 2 choices say default: KubeSpawner (and this hub) "
        "selects the first, two",
    ]
    ours = await pod_of(ProfileKubeSpawner, config.profile_list(), {}, {})
    assert ours == await pod_of(KubeSpawner, profile_list, {}, {}) and ours["image"] == "two:1"
    assert catalog.resolve(config.profile_list(), [], {}).image == "two:1"


def test_a_near_miss_of_allowed_groups_stays_an_error_as_it_would_open_the_profile():
    for key in ("alowed_groups", "allowed_group", "allowed-groups"):
        errors = pytest.raises(ConfigError, parse_config, community([{"display_name": "A", key: ["staff"]}]))
        assert errors.value.errors == [
            f"profiles[0].{key}: is not a known setting (did you mean 'allowed_groups'?): "
            "as written, this is offered to everyone"
        ]


def test_our_additions_still_work_beside_real_keys():
    profile_list = copy.deepcopy(PROFILE_LIST)
    profile_list[1]["allowed_groups"] = ["gpu-users"]
    size = profile_list[0]["profile_options"]["size"]
    size["node_share"] = {"instance": "r5.xlarge", "choices": 2, "allowed_groups": ["big"]}
    config = parse_config(community(profile_list))
    offered = catalog.available(config.profile_list(), ["students"])
    assert [p["slug"] for p in offered] == ["small"]
    assert list(offered[0]["profile_options"]["size"]["choices"]) == ["mem_4", "mem_16"]
    big = catalog.available(config.profile_list(), ["big", "gpu-users"])
    assert len(big[0]["profile_options"]["size"]["choices"]) == 4 and len(big) == 2


# --- the same pods ------------------------------------------------------------------


@pytest.mark.parametrize("selection", list(selections(PROFILE_LIST)), ids=lambda s: "-".join(s.values()))
async def test_kubespawner_and_ours_start_the_same_pod(selection):
    """KubeSpawner from the hub's list with the hub's defaults, ours from the community
    config with the defaults carried into the profiles (as convert writes them)."""
    theirs = await pod_of(KubeSpawner, PROFILE_LIST, selection, HUB_DEFAULTS)
    config = parse_config(community(folded(PROFILE_LIST, HUB_DEFAULTS)))
    ours = await pod_of(ProfileKubeSpawner, config.profile_list(), selection, {})
    assert ours == theirs
    # and the catalog knows the node it lands on
    resolved = catalog.resolve(config.profile_list(), [], selection)
    assert resolved.node_selector == (theirs["node_selector"] or {})


async def test_a_profiles_node_selector_keeps_the_hubs_other_labels():
    theirs = await pod_of(KubeSpawner, PROFILE_LIST, {"profile": "small", "size": "mem_16"}, HUB_DEFAULTS)
    assert theirs["node_selector"] == {
        "example.org/hub-name": "research",
        "example.org/pool": "users",
        INSTANCE_LABEL: "r5.2xlarge",
    }
    gpu = await pod_of(KubeSpawner, PROFILE_LIST, {"profile": "gpu"}, HUB_DEFAULTS)
    assert gpu["node_selector"] == {"example.org/hub-name": "research", INSTANCE_LABEL: "g4dn.xlarge"}


@pytest.mark.parametrize(
    "target, new",
    [
        ({}, {"node_selector": {"a": "1", "b": None}}),
        ({"node_selector": {"a": "1", "b": "2"}}, {"node_selector": {"b": None, "c": "3"}}),
        ({"extra_pod_config": {"x": {"y": 1}}}, {"extra_pod_config": {"x": {"z": 2, "y": None}}}),
        ({"cpu_limit": 2}, {"cpu_limit": 4, "image": "a:1"}),
    ],
)
def test_the_catalog_merges_overrides_as_kubespawner_does(target, new):
    ours, theirs = copy.deepcopy(target), copy.deepcopy(target)
    catalog.merge_override(ours, new)
    recursive_update(theirs, new)
    assert ours == theirs


# --- instance types -------------------------------------------------------------------


def test_a_custom_instance_type_schedules_on_its_node_label_and_keeps_its_figures():
    config = parse_config(
        textwrap.dedent("""\
        hub: {name: Research}
        instance_types:
          m5-measured: {provider: aws, cpu: 4, memory: 16G, allocatable_cpu: 3.9, node_label: m5.xlarge}
        profiles:
          - display_name: Shared
            profile_options:
              size: {display_name: Size, node_share: {instance: m5-measured, choices: 2}}
        pricing:
          prices: [{effective: 2024-01-01, instances: {m5-measured: {on_demand: 0.5}}}]
        """)
    )
    assert config.warnings == []
    choices = config.profile_list()[0]["profile_options"]["size"]["choices"]
    assert {c["kubespawner_override"]["node_selector"][INSTANCE_LABEL] for c in choices.values()} == {"m5.xlarge"}
    # the node's label finds the type described for it: its measured figures, its price
    whole = catalog.resolve(config.profile_list(), [], {"profile": "shared", "size": next(iter(choices))})
    instance = config.instance_catalog()[whole.instance_type]
    assert instance.name == "m5-measured" and instance.allocatable_cpu == 3.9
    # priced by its own name (the table has no per-resource rates to fall back on)
    price = config.pricing.to_pricing().hourly(whole.resources(), date(2024, 6, 1), config.instance_catalog())
    assert price.total > 0


def test_an_instance_type_no_cloud_knows_is_warned_about_with_the_setting_to_use():
    config = parse_config(community([], instance_types={"n2-highmem-16-big": {"cpu": 16, "memory": "128G"}}))
    assert config.warnings == [
        "instance_types.n2-highmem-16-big: 'n2-highmem-16-big' is not a cloud instance type twoi2c-hub knows: "
        "its node-share choices pin pods to nodes labelled node.kubernetes.io/instance-type=n2-highmem-16-big; "
        "set node_label to the value they carry (did you mean node_label: n2-highmem-16?)"
    ]
    known = parse_config(community([], instance_types={"n2-highmem-16": {"cpu": 16, "memory": "120G"}}))
    assert known.warnings == []


def test_the_kubernetes_example_schedules_on_real_labels():
    config = load_config(examples_dir() / "kube-community.yaml")
    assert config.warnings == []
    labels = {
        choice["kubespawner_override"]["node_selector"][INSTANCE_LABEL]
        for profile in config.profile_list()
        for option in profile.get("profile_options", {}).values()
        for choice in option.get("choices", {}).values()
        if INSTANCE_LABEL in (choice.get("kubespawner_override") or {}).get("node_selector", {})
    }
    assert labels == {"n2-highmem-4", "n2-highmem-16"} and labels <= set(INSTANCE_TYPES)
