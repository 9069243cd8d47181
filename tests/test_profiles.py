"""The profile catalog: who is offered what, what a selection starts, and every refusal."""

import pytest

from twoi2c_hub import catalog
from twoi2c_hub.catalog import ProfileError, ServerResources, available, in_plain_words, resolve
from twoi2c_hub.catalog.instances import INSTANCE_TYPES, GiB, InstanceType, MiB

CATALOG = [
    {
        "display_name": "Small",
        "slug": "small",
        "kubespawner_override": {"image": "img/base:1", "cpu_limit": 1, "mem_limit": "2G"},
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "base": {"display_name": "Base", "kubespawner_override": {"image": "img/base:1"}},
                    "secret": {
                        "display_name": "Secret lab image",
                        "allowed_groups": ["Lab"],
                        "kubespawner_override": {"image": "img/secret:1"},
                    },
                },
                "unlisted_choice": {
                    "enabled": True,
                    "display_name": "Your own image",
                    "validation_regex": r"^img/[a-z]+:[0-9]+$",
                    "validation_message": "Use img/NAME:NUMBER.",
                    "allowed_groups": ["power-users"],
                    "kubespawner_override": {"image": "{value}", "environment": {"IMAGE": "{value}"}},
                },
            }
        },
    },
    {
        "display_name": "GPU",
        "slug": "gpu",
        "allowed_groups": ["Researchers"],
        "kubespawner_override": {
            "image": "img/gpu:1",
            "extra_resource_limits": {"nvidia.com/gpu": "2"},
            "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
            "environment": {"A": "1", "B": "2"},
        },
        "profile_options": {
            "size": {
                "display_name": "Size",
                "choices": {
                    "s": {"display_name": "S", "kubespawner_override": {"mem_limit": "8G", "environment": {"B": None}}},
                    "l": {"display_name": "L", "default": True, "kubespawner_override": {"mem_limit": "16G"}},
                },
            }
        },
    },
    {
        "display_name": "Only secret",
        "slug": "only-secret",
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {"x": {"display_name": "X", "allowed_groups": ["lab"]}},
            }
        },
    },
]


def slugs(offered):
    return [p["slug"] for p in offered]


def choice_keys(offered, slug, option):
    profile = next(p for p in offered if p["slug"] == slug)
    return list(profile["profile_options"][option]["choices"])


# --- who is offered what ---------------------------------------------------------------


def test_student_sees_neither_gpu_nor_lab_profiles():
    offered = available(CATALOG, ["students"])
    assert slugs(offered) == ["small"]
    assert choice_keys(offered, "small", "image") == ["base"]
    assert offered[0]["profile_options"]["image"]["unlisted_choice"]["enabled"] is False


def test_group_names_compare_case_insensitively_at_all_three_levels():
    offered = available(CATALOG, ["researchers", "LAB", "Power-Users"])
    assert slugs(offered) == ["small", "gpu", "only-secret"]
    assert choice_keys(offered, "small", "image") == ["base", "secret"]
    assert offered[0]["profile_options"]["image"]["unlisted_choice"]["enabled"] is True


def test_profile_whose_option_has_no_choice_left_is_not_offered():
    assert "only-secret" not in slugs(available(CATALOG, ["researchers"]))


def test_filtered_default_choice_moves_to_first_remaining():
    catalog = [
        {
            "display_name": "P",
            "profile_options": {
                "o": {
                    "display_name": "O",
                    "choices": {
                        "a": {"display_name": "A"},
                        "b": {"display_name": "B", "default": True, "allowed_groups": ["x"]},
                    },
                }
            },
        }
    ]
    offered = available(catalog, [])
    assert offered[0]["profile_options"]["o"]["choices"]["a"]["default"] is True
    assert offered[0]["slug"] == "p"


def test_available_does_not_change_the_catalog():
    before = repr(CATALOG)
    available(CATALOG, ["students"])
    resolve(CATALOG, ["researchers"], {"profile": "gpu"})
    assert repr(CATALOG) == before


# --- what a selection starts -----------------------------------------------------------


def test_empty_selection_starts_the_default_profile_with_default_choices():
    server = resolve(CATALOG, ["students"], {})
    assert server.profile_slug == "small"
    assert server.choices["image"]["choice"] == "base"
    assert server.image == "img/base:1"
    assert server.cpu_limit == 1.0
    assert server.mem_limit == 2 * GiB


def test_gpu_profile_resources_merge_like_kubespawner():
    server = resolve(CATALOG, ["Researchers"], {"profile": "gpu", "size": "s"})
    assert server.gpu_count == 2
    assert server.gpu_type == "nvidia-tesla-t4"
    assert server.mem_limit == 8 * GiB
    # dicts merge, and None removes a key, as KubeSpawner's overrides do
    assert server.environment == {"A": "1"}
    assert resolve(CATALOG, ["researchers"], {"profile": "gpu"}).mem_limit == 16 * GiB


def test_write_in_value_fills_the_override_everywhere():
    server = resolve(CATALOG, ["power-users"], {"profile": "small", "image--unlisted-choice": " img/mine:7 "})
    assert server.image == "img/mine:7"
    assert server.environment == {"IMAGE": "img/mine:7"}
    assert server.choices["image"] == {"choice": None, "write_in": "img/mine:7", "display_name": "img/mine:7"}


def test_empty_catalog_resolves_to_no_profile():
    server = resolve([], ["x"], {"profile": "anything"})
    assert server.profile_slug is None and server.override == {}


# --- every refusal ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "groups, selection, status, message",
    [
        (
            ["students"],
            {"profile": "nope"},
            400,
            "There is no server profile 'nope'. Profiles on this hub: gpu, only-secret, small.",
        ),
        (
            ["students"],
            {"profile": "gpu"},
            403,
            "The server profile 'GPU' is only for members of Researchers. Your groups: students.",
        ),
        (
            ["students"],
            {"profile": "only-secret"},
            403,
            "The server profile 'only-secret' has no choice you may start. Your groups: students.",
        ),
        (
            ["students"],
            {"profile": "small", "image": "made-up"},
            400,
            "'made-up' is not a choice of 'Image'. Choices: base.",
        ),
        (
            ["students"],
            {"profile": "small", "image": "secret"},
            403,
            "The choice 'Secret lab image' of 'Image' is only for members of Lab. Your groups: students.",
        ),
        (
            ["students"],
            {"profile": "small", "image--unlisted-choice": "img/x:1"},
            403,
            "Writing in a value for 'Image' is only for members of power-users. Your groups: students.",
        ),
        (
            ["power-users"],
            {"profile": "small", "image--unlisted-choice": "img/x:1; rm -rf /"},
            400,
            "'img/x:1; rm -rf /' is not a valid value for 'Image': Use img/NAME:NUMBER.",
        ),
        (
            ["power-users"],
            {"profile": "small", "image": "unlisted-choice"},
            400,
            "Write in a value for 'Image', or pick one of its choices.",
        ),
        (
            ["researchers"],
            {"profile": "gpu", "size--unlisted-choice": "huge"},
            400,
            "'Size' does not take a written-in value; pick one of its choices.",
        ),
        (
            ["power-users"],
            # matches the regex, but 200 kB written in once broke a local server's command line
            {"profile": "small", "image--unlisted-choice": "img/" + "a" * 200_000 + ":1"},
            400,
            "A written-in value for 'Image' must be at most 500 characters.",
        ),
        (["students"], {"profile": ["small"]}, 400, "The selection 'profile' must be a string, not list."),
        ([], {}, 403, "No server profile on this hub is available to you. Your groups: (none)."),
    ],
)
def test_refusals_say_what_was_wrong(groups, selection, status, message):
    catalog = CATALOG if groups else [CATALOG[1]]
    with pytest.raises(ProfileError) as refused:
        resolve(catalog, groups, selection)
    assert refused.value.status == status
    assert refused.value.message == message


def test_write_in_regex_must_match_the_whole_value():
    # KubeSpawner's re.match would accept a valid prefix followed by anything
    with pytest.raises(ProfileError):
        resolve(CATALOG, ["power-users"], {"profile": "small", "image--unlisted-choice": "img/a:1 --evil"})


# --- the spawn form --------------------------------------------------------------------


def test_form_selection_keeps_only_the_chosen_profile_fields():
    form = {
        "_xsrf": ["token"],
        "profile": ["gpu"],
        "profile-option-gpu--size": ["s"],
        "profile-option-small--image": ["secret"],
    }
    assert catalog.selection_from_form(form) == {"profile": "gpu", "size": "s"}


def test_form_write_in_counts_only_when_its_select_says_so():
    form = {
        "profile": ["small"],
        "profile-option-small--image": ["base"],
        "profile-option-small--image--unlisted-choice": ["img/ignored:1"],
    }
    assert catalog.selection_from_form(form) == {"profile": "small", "image": "base"}
    form["profile-option-small--image"] = ["unlisted-choice"]
    assert catalog.selection_from_form(form) == {"profile": "small", "image--unlisted-choice": "img/ignored:1"}


# --- node share ------------------------------------------------------------------------


def test_node_share_figures_match_hand_computed_values():
    # n2-highmem-4: 4 vCPU, 32 GiB.
    # GKE reserves CPU 0.06 + 0.01 + 2 * 0.005 = 0.08 -> 3.92; daemonsets 0.1 -> 3.82;
    # margin 2% = 0.0764 -> 3.7436 cores.
    # Memory reserved: 4*0.25 + 4*0.20 + 8*0.10 + 16*0.06 = 3.56 GiB, + 100 MiB eviction;
    # daemonsets 256 MiB -> (32 - 3.56) GiB - 356 MiB = 28766.56 MiB; margin 2% -> 28191.2288 MiB.
    choices = catalog.node_share_choices(INSTANCE_TYPES["n2-highmem-4"], 3)
    whole = 28191.2288 * MiB
    assert list(choices) == ["mem_6_9_gib", "mem_14_gib", "mem_28_gib"]
    for (_key, choice), share in zip(choices.items(), [4, 2, 1]):
        override = choice["kubespawner_override"]
        assert override["mem_limit"] == override["mem_guarantee"]
        assert override["mem_limit"] == pytest.approx(whole / share, abs=1)
        assert override["cpu_guarantee"] == pytest.approx(3.7436 / share, abs=0.001)
        assert override["cpu_limit"] == pytest.approx(3.7436, abs=0.001)
        assert override["node_selector"] == {"node.kubernetes.io/instance-type": "n2-highmem-4"}
    assert choices["mem_28_gib"]["display_name"] == "~28 GiB RAM, ~4 CPUs"
    assert choices["mem_6_9_gib"]["display_name"] == "~6.9 GiB RAM, ~0.9 CPUs"
    assert choices["mem_6_9_gib"]["description"] == "Up to ~4 CPUs when the machine is not busy"


def test_node_share_uses_measured_allocatable_figures_when_given():
    measured = InstanceType(
        "custom", "other", cpu=8, memory_bytes=64 * GiB, allocatable_cpu=7.9, allocatable_memory_bytes=60 * GiB
    )
    choices = catalog.node_share_choices(measured, 2, daemonset_cpu=0, daemonset_memory_bytes=0, default=0)
    # 2% margins: 7.9 - 0.158 = 7.742 cores; 60 GiB - 1.2 GiB = 58.8 GiB
    small, large = choices.values()
    assert large["kubespawner_override"]["mem_limit"] == int(58.8 * GiB)
    assert small["kubespawner_override"]["mem_limit"] == int(29.4 * GiB)
    assert small["kubespawner_override"]["cpu_guarantee"] == pytest.approx(3.871)
    assert small.get("default") is True and "default" not in large


def test_node_share_margin_is_capped_at_2_gib_and_one_core():
    big = InstanceType(
        "big", "other", cpu=96, memory_bytes=768 * GiB, allocatable_cpu=95, allocatable_memory_bytes=760 * GiB
    )
    (whole,) = catalog.node_share_choices(big, 1, daemonset_cpu=0, daemonset_memory_bytes=0).values()
    assert whole["kubespawner_override"]["mem_limit"] == 758 * GiB
    assert whole["kubespawner_override"]["cpu_limit"] == 94


def test_gpu_instance_node_share_asks_for_its_gpus():
    choices = catalog.node_share_choices(INSTANCE_TYPES["g4dn.xlarge"], 2)
    for choice in choices.values():
        assert choice["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}


def test_reserved_cpu_and_memory_tiers():
    from twoi2c_hub.catalog.instances import reserved_cpu, reserved_memory_bytes

    assert reserved_cpu(1) == pytest.approx(0.06)
    assert reserved_cpu(16) == pytest.approx(0.06 + 0.01 + 0.01 + 12 * 0.0025)
    # 256 GiB: 1 + 0.8 + 0.8 + 112*0.06 + 128*0.02 = 11.88 GiB, + 100 MiB
    assert reserved_memory_bytes("gcp", 256 * GiB) == int(11.88 * GiB) + 100 * MiB
    assert reserved_memory_bytes("aws", 64 * GiB) == (255 + 11 * 110 + 100) * MiB
    assert reserved_memory_bytes("azure", 64 * GiB) == (20 * 30 + 50 + 100) * MiB


@pytest.mark.parametrize(
    "resources, words",
    [
        (ServerResources(cpu_guarantee=0.5, cpu_limit=4, mem_guarantee=4 * GiB, mem_limit=4 * GiB),
         "4 GiB memory, 0.5 CPUs guaranteed, up to 4"),
        (ServerResources(cpu_limit=1, mem_guarantee=GiB // 2, mem_limit=2 * GiB, gpu_count=2),
         "0.5 GiB memory guaranteed, up to 2, 1 CPU, 2 GPUs"),
        (ServerResources(mem_guarantee=int(14.5 * GiB)), "14 GiB memory"),  # no false precision past 10
        (ServerResources(), None),
    ],
)  # fmt: skip
def test_resources_in_plain_words(resources, words):
    assert in_plain_words(resources) == words


def test_a_choices_node_selector_adds_to_the_profiles_as_kubespawner_merges_it():
    profile = {
        "display_name": "GPU",
        "kubespawner_override": {"node_selector": {"example.org/hub-name": "research", "example.org/pool": "users"}},
        "profile_options": {
            "size": {
                "display_name": "Size",
                "choices": {
                    "t4": {
                        "display_name": "T4",
                        "kubespawner_override": {
                            "node_selector": {
                                "node.kubernetes.io/instance-type": "g4dn.xlarge",
                                "example.org/pool": None,
                            }
                        },
                    }
                },
            }
        },
    }
    resolved = resolve([profile], [], {"profile": "gpu", "size": "t4"})
    assert resolved.node_selector == {
        "example.org/hub-name": "research",
        "node.kubernetes.io/instance-type": "g4dn.xlarge",
    }
    assert resolved.instance_type == "g4dn.xlarge"


def test_node_share_pins_a_custom_type_to_its_node_label():
    measured = InstanceType(
        "n2-highmem-16-measured", "gcp", 16, 128 * GiB, 15.89, 120 * GiB, node_label="n2-highmem-16"
    )
    choices = catalog.node_share_choices(measured, 2)
    assert {
        c["kubespawner_override"]["node_selector"]["node.kubernetes.io/instance-type"] for c in choices.values()
    } == {"n2-highmem-16"}
    plain = catalog.node_share_choices(INSTANCE_TYPES["n2-highmem-4"], 1)
    assert next(iter(plain.values()))["kubespawner_override"]["node_selector"] == {
        "node.kubernetes.io/instance-type": "n2-highmem-4"
    }
