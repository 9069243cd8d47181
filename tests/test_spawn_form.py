"""The spawn form as a person reads it, drawn by the spawners without a hub: each choice's
resources and price per hour as text beside it (never only inside a <select>'s option,
where it is cut off), what this hub cannot give shown disabled with the reason and refused
at start, and a Start button that says why when nothing may start."""

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from traitlets.config import Config

from twoi2c_hub import catalog
from twoi2c_hub.catalog.budget_answer import BudgetAnswer, BudgetLine, RecentUse
from twoi2c_hub.config import load_config
from twoi2c_hub.paths import examples_dir
from twoi2c_hub.spawners.base import ProfileRefused
from twoi2c_hub.spawners.kube import ProfileKubeSpawner
from twoi2c_hub.spawners.local import ProfileLocalSpawner

DEMO = examples_dir() / "demo-community.yaml"
ALICE = ("alice", ["researchers"])
BOB = ("bob", ["students"])

# the demo's prices (examples/demo-community.yaml), written out again here
CPU_CORE_HOUR, MEMORY_GIB_HOUR, T4_HOUR = 0.031611, 0.004237, 0.35
N2_HIGHMEM_4 = 0.2622  # on demand, an hour: the shared CPU server's machine


def spawner(cls, person, **settings):
    community = load_config(DEMO)
    c = Config()
    section = c[cls.__name__]
    section.profile_list = community.profile_list()
    section.pricing = community.pricing.to_pricing()
    section.instance_types = community.instance_catalog()
    section.interfaces = community.spawner.interface_list()
    if cls is ProfileLocalSpawner:
        section.images = community.spawner.local.images
    for key, value in settings.items():
        section[key] = value
    name, groups = person
    user = SimpleNamespace(
        name=name, id=7, url=f"/user/{name}/", admin=False, groups=[SimpleNamespace(name=g) for g in groups]
    )
    made = cls(user=user, config=c, **({"_mock": True} if cls is ProfileKubeSpawner else {}))
    made.hub = SimpleNamespace(base_url="/hub/")
    return made


async def form_of(made) -> BeautifulSoup:
    return BeautifulSoup(await made.get_options_form(), "html.parser")


def visible_text(element) -> str:
    """The text of `element` as shown: without the (escaped) script and style."""
    element = BeautifulSoup(str(element), "html.parser")
    for hidden in element.select("script, style, option, noscript"):
        hidden.decompose()
    return " ".join(element.get_text(" ", strip=True).split())  # white space collapsed, as drawn


def hourly(person, selection) -> float:
    """The price per hour of `selection`, as the cost service charges it: the catalog's
    resolution of the selection, priced with the demo's prices today."""
    community = load_config(DEMO)
    resolved = catalog.resolve(community.profile_list(), person[1], selection)
    pricing = community.pricing.to_pricing()
    return pricing.hourly(resolved.resources(), datetime.now(UTC).date(), community.instance_catalog()).total


def choice_row(form: BeautifulSoup, slug: str, option: str, choice: str):
    return form.select_one(f"[data-profile={slug}] fieldset#profile-option-{slug}--{option} [data-choice='{choice}']")


@pytest.mark.parametrize("cls", [ProfileLocalSpawner, ProfileKubeSpawner])
async def test_each_memory_and_cpu_choice_shows_its_price_as_text_beside_its_own_radio(cls):
    form = await form_of(spawner(cls, ALICE))
    # the shared CPU server's choices are shares of one machine, each paying its share
    shares = {"mem_6_9_gib": 0.25, "mem_14_gib": 0.5, "mem_28_gib": 1.0}
    for choice, share in shares.items():
        row = choice_row(form, "cpu", "resources", choice)
        assert row.select_one("input[type=radio][name=profile-option-cpu--resources]")["value"] == choice
        assert row.find_parent("option") is None and row.find_parent("select") is None
        price = row.select_one(".twoi2c-price").get_text(" ", strip=True)
        assert price == f"{N2_HIGHMEM_4 * share:.2f} USD an hour"
        assert price == f"{hourly(ALICE, {'profile': 'cpu', 'resources': choice}):.2f} USD an hour"
        # its name says its memory and CPUs, in the label of its radio: visible text
        name = row.select_one("label").get_text(strip=True)
        assert "GiB" in name and "CPU" in name and name in visible_text(form)
    # a choice named in words has its resources in plain words beside it
    whole = choice_row(form, "cpu", "resources", "whole-node")
    assert whole.select_one(".twoi2c-resources").get_text(strip=True) == "100 GiB memory, 14 CPUs guaranteed, up to 15"
    assert whole.select_one(".twoi2c-price").get_text(" ", strip=True) == (
        f"{hourly(ALICE, {'profile': 'cpu', 'resources': 'whole-node'}):.2f} USD an hour"
    )
    # nothing of a price or of resources in plain words is left inside an option
    for option in form.select("option"):
        assert "an hour" not in option.get_text() and "guaranteed" not in option.get_text(), option
        assert "Not available" not in option.get_text(), option


async def test_the_gpu_profile_on_kubernetes_shows_its_resources_and_price_and_may_start():
    form = await form_of(spawner(ProfileKubeSpawner, ALICE))
    card = form.select_one(".twoi2c-profile[data-profile=gpu]")
    assert not card.select_one("input[name=profile]").has_attr("disabled")
    resources = card.select_one(".twoi2c-resources").get_text(strip=True)
    assert resources == "14 GiB memory, 3.5 CPUs guaranteed, up to 4, 1 GPU"
    # charged on its requests: 3.5 cores, 14 GiB and a T4
    price = 3.5 * CPU_CORE_HOUR + 14 * MEMORY_GIB_HOUR + T4_HOUR
    assert card.select_one(".twoi2c-price").get_text(" ", strip=True) == f"{price:.2f} USD an hour"
    # the figure carries its value, for the reader's locale (twoi2c_hub/dates.py)
    assert card.select_one(".twoi2c-price data.twoi2c-number")["value"] == f"{price:.2f}"
    assert price == pytest.approx(hourly(ALICE, {"profile": "gpu"}))
    assert card.select_one(".twoi2c-refused") is None


async def test_the_local_spawner_shows_the_gpu_profile_disabled_with_why_and_no_price():
    form = await form_of(spawner(ProfileLocalSpawner, ALICE))
    card = form.select_one(".twoi2c-profile[data-profile=gpu]")
    radio = card.select_one("input[name=profile]")
    assert radio.has_attr("disabled") and not radio.has_attr("checked")
    reason = card.select_one(".twoi2c-refused")
    assert reason.get_text(strip=True) == "Not available: this hub cannot give its servers a GPU."
    assert radio["aria-describedby"] == reason["id"]
    assert card.select_one(".twoi2c-price") is None and "USD" not in visible_text(card)
    # what it would have given is still said
    assert card.select_one(".twoi2c-resources").get_text(strip=True).endswith("1 GPU")
    # the shared CPU server may start: it is selected, and Start is not blocked
    assert form.select_one("input[name=profile][value=cpu]").has_attr("checked")
    assert form.select_one("#twoi2c-start-blocked") is None
    # an image this machine has not is said beside the select, not inside it
    note = form.select_one(".twoi2c-choice-note[data-choice=r]")
    assert visible_text(note) == (
        "Jupyter R: Not available on this hub: this image (the default environment runs instead)."
    )


async def test_a_forged_gpu_selection_is_refused_on_the_local_spawner_and_allowed_where_it_gives_gpus():
    made = spawner(ProfileLocalSpawner, ALICE)
    with pytest.raises(ProfileRefused) as refused:
        await made.resolve_selection({"profile": "gpu"})
    assert refused.value.status_code == 400
    assert refused.value.message == (
        "The server 'GPU server' asks for a GPU, which this hub cannot give its servers. Please choose another server."
    )
    # a machine whose servers may use its GPU (gives_gpus) offers and starts it
    made = spawner(ProfileLocalSpawner, ALICE, gives_gpus=True)
    assert (await made.resolve_selection({"profile": "gpu"})).gpu_count == 1
    card = (await form_of(made)).select_one(".twoi2c-profile[data-profile=gpu]")
    assert not card.select_one("input[name=profile]").has_attr("disabled")
    assert card.select_one(".twoi2c-price") is not None


async def test_a_launch_link_to_the_gpu_server_on_the_local_spawner_says_it_cannot_start():
    from twoi2c_hub.spawners.base import ConfirmLaunch

    made = spawner(ProfileLocalSpawner, ALICE)
    with pytest.raises(ConfirmLaunch):
        made.options_from_query({"profile": ["gpu"]})
    form = await form_of(made)
    assert visible_text(form.select_one(".twoi2c-link-refused")) == (
        "What the link chose cannot start: this hub cannot give its servers a GPU. "
        "Another choice is selected below instead."
    )
    assert form.select_one("input[name=profile][value=cpu]").has_attr("checked")
    # a link to what may start says nothing of the kind
    with pytest.raises(ConfirmLaunch):
        made.options_from_query({"profile": ["cpu"], "resources": ["whole-node"]})
    form = await form_of(made)
    assert form.select_one(".twoi2c-from-link") is not None and form.select_one(".twoi2c-link-refused") is None
    assert choice_row(form, "cpu", "resources", "whole-node").select_one("input").has_attr("checked")


async def test_a_gpu_choice_is_disabled_alone_and_a_profile_of_only_gpu_choices_cannot_start():
    profiles = [
        {
            "display_name": "Lab machine",
            "slug": "lab",
            "profile_options": {
                "size": {
                    "display_name": "Size",
                    "choices": {
                        "cpu": {"display_name": "Two cores", "kubespawner_override": {"cpu_limit": 2}},
                        "gpu": {
                            "display_name": "With a GPU",
                            "default": True,
                            "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
                        },
                    },
                }
            },
        }
    ]
    made = spawner(ProfileLocalSpawner, BOB, profile_list=profiles)
    form = await form_of(made)
    gpu = choice_row(form, "lab", "size", "gpu")
    assert gpu.select_one("input").has_attr("disabled") and not gpu.select_one("input").has_attr("checked")
    assert gpu.select_one(".twoi2c-refused").get_text(" ", strip=True) == (
        "Not available: this hub cannot give its servers a GPU."
    )
    # the default cannot start here: the choice that can is checked instead
    assert choice_row(form, "lab", "size", "cpu").select_one("input").has_attr("checked")
    with pytest.raises(ProfileRefused, match="'Lab machine, With a GPU' asks for a GPU"):
        await made.resolve_selection({"profile": "lab", "size": "gpu"})
    assert (await made.resolve_selection({"profile": "lab", "size": "cpu"})).cpu_limit == 2

    del profiles[0]["profile_options"]["size"]["choices"]["cpu"]
    form = await form_of(spawner(ProfileLocalSpawner, BOB, profile_list=profiles))
    assert not form.select("input[name=profile][checked]")
    assert visible_text(form.select_one("#twoi2c-start-blocked")) == (
        "No server can start: none of the servers offered to you can run on this hub."
    )


class CostService:
    """The cost service's budget check, answering `state` to every question."""

    def __init__(self, monkeypatch, state: BudgetAnswer):
        from twoi2c_hub.spawners import budget

        self.state = state
        monkeypatch.setattr(budget, "ask", self.ask)

    async def ask(self, url, token, timeout, username, groups, server):
        return self.state


def students_budget(action: str, left: float) -> BudgetAnswer:
    used = 10.0 - left
    text = f"students-weekly: {used:.2f} USD of 10.00 USD used"
    line = BudgetLine(budget="students-weekly", applies_to="group", subject="students", unit="money",
                      currency="USD", used=used, limit=10.0, left=left, percent=used * 10, action=action,
                      period="7d", text=text)  # fmt: skip
    return BudgetAnswer(
        allowed=action not in ("deny", "stop"), action=action, message=f"Your budget is used up: {text}.",
        decisive="students-weekly", budgets=[line],
    )  # fmt: skip


async def test_a_restricting_budget_disables_the_choices_it_cannot_pay_for_with_their_price(monkeypatch):
    CostService(monkeypatch, students_budget("restrict", 0.2))
    form = await form_of(spawner(ProfileLocalSpawner, BOB, budget_check_url="http://cost/check"))
    small = choice_row(form, "cpu", "resources", "mem_6_9_gib")
    large = choice_row(form, "cpu", "resources", "mem_28_gib")
    assert not small.select_one("input").has_attr("disabled")
    hours = 0.2 / hourly(BOB, {"profile": "cpu", "resources": "mem_6_9_gib"})
    assert small.select_one(".twoi2c-hours-left").get_text(" ", strip=True) == (
        f"your budget left buys about {hours:.1f} hours"
    )
    assert large.select_one("input").has_attr("disabled")
    price = hourly(BOB, {"profile": "cpu", "resources": "mem_28_gib"})
    assert large.select_one(".twoi2c-price").get_text(" ", strip=True) == f"{price:.2f} USD an hour"
    assert large.select_one(".twoi2c-refused").get_text(" ", strip=True) == (
        f"Not available: {price:.2f} USD an hour: more than the 0.20 USD left of your budget."
    )
    assert form.select_one("#twoi2c-start-blocked") is None


async def test_a_budget_that_pays_for_no_choice_blocks_start_with_the_reason(monkeypatch):
    CostService(monkeypatch, students_budget("restrict", 0.01))  # the smallest share: 0.07 an hour
    form = await form_of(spawner(ProfileLocalSpawner, BOB, budget_check_url="http://cost/check"))
    radios = form.select("input[name=profile-option-cpu--resources]")
    assert len(radios) == 3 and all(r.has_attr("disabled") and not r.has_attr("checked") for r in radios)
    assert not form.select("input[name=profile][checked]")
    assert visible_text(form.select_one("#twoi2c-start-blocked")) == (
        "No server can start now: those this hub can run cost more than is left of your budget."
    )


async def test_a_budget_used_up_says_so_beside_start_in_both_forms(monkeypatch):
    CostService(monkeypatch, students_budget("deny", 0.0))
    for form_kind in ("cards", "fancy-profiles"):
        made = spawner(ProfileLocalSpawner, BOB, budget_check_url="http://cost/check", spawn_form=form_kind)
        form = await form_of(made)
        blocked = form.select_one("#twoi2c-start-blocked")
        assert visible_text(blocked) == "No server can start: your budget is used up."
        # the last thing in the form: right above the Start button the hub draws after it
        assert blocked.find_next(True) is None
        if form_kind == "fancy-profiles":  # its own form (and Start button) is not drawn
            assert form.select_one("#form") is None and "window.profileList" not in str(form)


async def test_no_profile_for_the_person_blocks_start_with_the_reason():
    made = spawner(ProfileLocalSpawner, ("eve", ["visitors"]))
    made.profile_list = [{"display_name": "Staff", "slug": "staff", "allowed_groups": ["staff"]}]
    form = await form_of(made)
    assert form.select_one("#twoi2c-no-profiles") is not None
    assert visible_text(form.select_one("#twoi2c-start-blocked")) == "No server can start: none is offered to you."


async def test_fancy_profiles_gets_what_the_hub_can_give_and_the_prices_are_ours_as_text():
    made = spawner(ProfileLocalSpawner, ALICE, spawn_form="fancy-profiles")
    form = await form_of(made)
    script = next(s.string for s in form.select("script") if s.string and "window.profileList" in s.string)
    profiles = json.loads(script.split("window.profileList = ", 1)[1].rsplit(";", 1)[0])
    assert [p["slug"] for p in profiles] == ["cpu"]  # no GPU on this machine: not offered to pick
    listing = form.select_one(".twoi2c-price-list")
    for choice in ("mem_6_9_gib", "mem_14_gib", "mem_28_gib", "whole-node"):
        row = listing.select_one(f"[data-profile=cpu] [data-choice='{choice}']")
        price = hourly(ALICE, {"profile": "cpu", "resources": choice})
        assert row.select_one(".twoi2c-price").get_text(" ", strip=True) == f"{price:.2f} USD an hour"
    gpu = listing.select_one("[data-profile=gpu]")
    assert visible_text(gpu) == (
        "GPU server — 14 GiB memory, 3.5 CPUs guaranteed, up to 4, 1 GPU"
        " Not available: this hub cannot give its servers a GPU."
    )
    # on Kubernetes the GPU profile is offered, with its price in the list
    made = spawner(ProfileKubeSpawner, ALICE, spawn_form="fancy-profiles")
    form = await form_of(made)
    price = hourly(ALICE, {"profile": "gpu"})
    assert form.select_one(".twoi2c-price-list [data-profile=gpu] .twoi2c-price").get_text(" ", strip=True) == (
        f"{price:.2f} USD an hour"
    )
    assert '"slug": "gpu"' in str(form)


async def test_markup_in_names_is_escaped_in_the_rows_and_the_list():
    hostile = "<img src=x onerror=alert(1)>"
    profiles = [
        {
            "display_name": hostile,
            "slug": "p",
            "profile_options": {
                "size": {
                    "display_name": hostile,
                    "choices": {
                        "a": {"display_name": hostile, "description": hostile, "kubespawner_override": {"cpu_limit": 1}}
                    },
                }
            },
        }
    ]
    for form_kind in ("cards", "fancy-profiles"):
        form = await form_of(spawner(ProfileLocalSpawner, BOB, profile_list=profiles, spawn_form=form_kind))
        assert form.select_one("img") is None and hostile in visible_text(form)


async def test_both_forms_say_what_the_persons_recent_sessions_on_a_profile_used(monkeypatch):
    """The cost service's answer carries what bob's last measured sessions used per profile:
    the cards and fancy-profiles' list both say it, beside that profile only."""
    answer = students_budget("none", 8.0)
    answer.recent_use = {"cpu": RecentUse(sessions=3, ramByteUsageMax=int(2.5 * 1024**3), cpuCoreUsageAverage=0.42)}
    CostService(monkeypatch, answer)
    said = "Your last 3 sessions here used at most 2.5 GiB of memory and 0.4 CPU on average."
    for form_kind, profile in (("cards", ".twoi2c-profile[data-profile=cpu]"),
                               ("fancy-profiles", ".twoi2c-profile-prices[data-profile=cpu]")):  # fmt: skip
        made = spawner(ProfileLocalSpawner, BOB, budget_check_url="http://cost/check", spawn_form=form_kind)
        form = await form_of(made)
        (line,) = form.select(".twoi2c-recent-use")
        assert visible_text(line) == said, form_kind
        assert line in form.select_one(profile).find_all(True), form_kind
