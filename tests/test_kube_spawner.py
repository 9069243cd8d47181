"""ProfileKubeSpawner up to the API call: manifests KubeSpawner itself builds, validated
against the Kubernetes schemas, for every profile and choice of every example config."""

import asyncio
import json
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from kube_schemas import validate
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

from twoi2c_hub import catalog
from twoi2c_hub.catalog.budget_answer import BudgetAnswer, BudgetLine
from twoi2c_hub.config import load_config
from twoi2c_hub.paths import examples_dir
from twoi2c_hub.spawners.kube import LABEL_PREFIX, ProfileKubeSpawner, label_value

EXAMPLES = sorted(examples_dir().glob("*.yaml"))


def make_user(name="alice", groups=("researchers",), admin=False):
    return SimpleNamespace(
        name=name,
        id=7,
        url=f"/user/{name}/",
        admin=admin,
        groups=[SimpleNamespace(name=g) for g in groups],
    )


def make_spawner(config_path, user, **settings):
    community = load_config(config_path)
    c = Config()
    c.ProfileKubeSpawner.profile_list = community.profile_list()
    c.ProfileKubeSpawner.user_environment = community.spawner.user_environment
    c.ProfileKubeSpawner.admin_environment = community.spawner.admin_environment
    for key, value in settings.items():
        setattr(c.ProfileKubeSpawner, key, value)
    return ProfileKubeSpawner(_mock=True, user=user, config=c)


async def as_dict(pod) -> dict:
    async with ApiClient() as api:
        data = api.sanitize_for_serialization(pod)
    return {"apiVersion": "v1", "kind": "Pod", **data}


def selections(config_path):
    """(profile, selection, groups) for every profile and every choice of each option."""
    for profile in catalog.initialize(load_config(config_path).profile_list()):
        groups = profile.get("allowed_groups") or ["everyone"]
        options = profile.get("profile_options", {})
        if not options:
            yield profile, {"profile": profile["slug"]}, groups
        for option_key, option in options.items():
            for choice_key, choice in option.get("choices", {}).items():
                choice_groups = choice.get("allowed_groups") or []
                yield profile, {"profile": profile["slug"], option_key: choice_key}, list(groups) + choice_groups


CASES = [
    pytest.param(path, profile, selection, groups, id=f"{path.stem}-{'-'.join(selection.values())}")
    for path in EXAMPLES
    for profile, selection, groups in selections(path)
]


@pytest.mark.parametrize("config_path, profile, selection, groups", CASES)
async def test_every_example_choice_builds_a_valid_pod(config_path, profile, selection, groups):
    user = make_user(groups=groups)
    spawner = make_spawner(config_path, user)
    spawner.user_options = selection
    await spawner.load_user_options()
    pod = await as_dict(await spawner.get_pod_manifest())
    validate(pod)

    # what the catalog says, KubeSpawner put in the manifest
    expected = catalog.resolve(load_config(config_path).profile_list(), groups, selection)
    container = pod["spec"]["containers"][0]
    resources = container.get("resources", {})
    if expected.cpu_limit is not None:
        assert float(resources["limits"]["cpu"]) == pytest.approx(expected.cpu_limit)
    if expected.cpu_guarantee is not None:
        assert float(resources["requests"]["cpu"]) == pytest.approx(expected.cpu_guarantee)
    if expected.mem_limit is not None:
        assert int(resources["limits"]["memory"]) == expected.mem_limit
    if expected.mem_guarantee is not None:
        assert int(resources["requests"]["memory"]) == expected.mem_guarantee
    if expected.gpu_count:
        assert resources["limits"]["nvidia.com/gpu"] == str(expected.gpu_count)
    assert container["image"] == expected.image
    assert pod["spec"].get("nodeSelector", {}) == {**expected.node_selector}
    labels = pod["metadata"]["labels"]
    assert labels[LABEL_PREFIX + "profile"] == label_value(profile["slug"])
    for option_key, picked in expected.choices.items():
        assert labels[LABEL_PREFIX + label_value(f"option-{option_key}")] == label_value(picked["choice"])
    annotation = json.loads(pod["metadata"]["annotations"][LABEL_PREFIX + "server"])
    assert annotation == json.loads(json.dumps(expected.summary().wire()))


DEMO = examples_dir() / "demo-community.yaml"


async def test_gpu_profile_manifest_requests_a_gpu_on_a_gpu_node():
    spawner = make_spawner(DEMO, make_user())
    spawner.user_options = {"profile": "gpu"}
    await spawner.load_user_options()
    pod = await as_dict(await spawner.get_pod_manifest())
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": 4.0, "memory": 14 * 1024**3, "nvidia.com/gpu": "1"}
    assert container["resources"]["requests"] == {"cpu": 3.5, "memory": 14 * 1024**3}
    assert pod["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert pod["metadata"]["labels"][LABEL_PREFIX + "gpu-count"] == "1"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"


@pytest.mark.parametrize(
    "selection, status, message",
    [
        (
            {"profile": "gpu"},
            403,
            "The server profile 'GPU server' is only for members of researchers. Your groups: students.",
        ),
        ({"profile": "cpu", "resources": "made-up"}, 400, "'made-up' is not a choice of 'Memory and CPU'."),
        ({"profile": "cpu", "resources": "whole-node"}, 403, "is only for members of researchers"),
        ({"profile": "cpu", "image--unlisted-choice": "not an image"}, 400, "is not a valid value for 'Image'"),
    ],
)
async def test_student_selection_not_theirs_is_refused_with_4xx(selection, status, message):
    spawner = make_spawner(DEMO, make_user("bob", ["students"]))
    spawner.user_options = selection
    with pytest.raises(profiles_refused()) as refused:
        await spawner.load_user_options()
    assert refused.value.status_code == status
    assert message in refused.value.message
    # KubeSpawner's own callers expect a ValueError for a bad selection
    assert isinstance(refused.value, ValueError)


def profiles_refused():
    from twoi2c_hub.spawners.base import ProfileRefused

    return ProfileRefused


async def test_kubespawner_sees_only_the_offered_profiles():
    spawner = make_spawner(DEMO, make_user("bob", ["students"]))
    offered = await spawner.profile_list(spawner)
    assert [p["slug"] for p in offered] == ["cpu"]
    assert "whole-node" not in offered[0]["profile_options"]["resources"]["choices"]
    # and its own form, when an operator asks for it, renders that filtered list
    spawner.profile_form_template = "{% for p in profile_list %}[{{ p.slug }}]{% endfor %}"
    form = await spawner._render_options_form_dynamically(spawner)
    assert form == "[cpu]"


async def test_fancy_profiles_on_kubernetes_sees_only_the_offered_profiles():
    """2i2c's jupyterhub-fancy-profiles, set up as its README says (its template through
    KubeSpawner's) or through `spawn_form`: bob's page holds bob's profiles only, and
    with `spawn_form` no overrides; a selection not his is refused at start either way."""
    import jupyterhub_fancy_profiles

    def page_profiles(form: str) -> list[dict]:
        return json.loads(form.split("window.profileList = ", 1)[1].split(";\n", 1)[0])

    bob = make_user("bob", ["students"])
    spawner = make_spawner(DEMO, bob, additional_profile_form_template_paths=jupyterhub_fancy_profiles.TEMPLATE_PATHS)
    profiles = page_profiles(await spawner.get_options_form())
    assert [p["slug"] for p in profiles] == ["cpu"]
    assert "whole-node" not in profiles[0]["profile_options"]["resources"]["choices"]

    spawner = make_spawner(DEMO, bob, spawn_form="fancy-profiles")
    spawner.hub = SimpleNamespace(base_url="/community/hub/")
    form = await spawner.get_options_form()
    assert '<script src="/community/hub/fancy-profiles/static/dist/form.js" defer>' in form
    profiles = page_profiles(form)
    assert [p["slug"] for p in profiles] == ["cpu"] and "kubespawner_override" not in json.dumps(profiles)
    spawner.user_options = {"profile": "gpu"}
    with pytest.raises(profiles_refused()) as refused:
        await spawner.load_user_options()
    assert refused.value.status_code == 403


async def test_our_form_lists_only_what_bob_may_start():
    spawner = make_spawner(DEMO, make_user("bob", ["students"]))
    form = await spawner.get_options_form()
    assert 'value="cpu"' in form and 'value="gpu"' not in form
    assert "whole-node" not in form and 'value="mem_6_9_gib"' in form


async def test_user_and_admin_environment_and_admin_mounts():
    mount = {"name": "home", "mountPath": "/home/jovyan/shared-readwrite", "subPath": "_shared"}
    for admin in (False, True):
        user = make_user("Ünïcode <b>", ["students"], admin=admin)
        spawner = make_spawner(DEMO, user, admin_volume_mounts=[mount], volumes=[{"name": "home", "emptyDir": {}}])
        spawner.user_options = {"profile": "cpu"}
        await spawner.load_user_options()
        pod = await as_dict(await spawner.get_pod_manifest())
        validate(pod)
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["SCRATCH_BUCKET"] == "s3://demo-community-scratch/-c3-9cn-c3-afcode-20-3cb-3e"
        assert ("HUB_ROLE" in env) is admin
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        assert ("/home/jovyan/shared-readwrite" in mounts) is admin


@pytest.mark.parametrize("value", ["researchers", "Ünïcode/<script>", "x" * 200, "-leading.dot.", ""])
def test_label_values_are_always_valid(value):
    from kubespawner.slugs import is_valid_label

    escaped = label_value(value)
    assert is_valid_label(escaped) or escaped == ""
    assert len(escaped) <= 63


def test_hostile_label_values_do_not_collide():
    values = ["a/b", "a-b", "a.b", "A_b", "a" * 100, "a" * 101]
    assert len({label_value(v) for v in values}) == len(values)


async def test_a_plain_kubespawner_profile_list_without_groups_behaves_as_kubespawner():
    plain = [
        {"display_name": "One", "kubespawner_override": {"cpu_limit": 1}},
        {"display_name": "Two", "default": True, "kubespawner_override": {"cpu_limit": 2}},
    ]
    c = Config()
    c.ProfileKubeSpawner.profile_list = {"b": plain[1], "a": plain[0]}  # a dict, as KubeSpawner 7.1 allows
    spawner = ProfileKubeSpawner(_mock=True, config=c)
    spawner.user_options = {}
    await spawner.load_user_options()
    assert spawner.cpu_limit == 2
    spawner.user_options = {"profile": "one"}
    await spawner.load_user_options()
    assert spawner.cpu_limit == 1


async def until(condition, what: str, timeout: float = 5) -> None:
    """Let the event loop run until `condition()`; after `timeout` s, fail saying `what`."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def test_pods_wait_in_line_after_their_selection_is_checked():
    """With concurrent_starts = 1 the second pod's start waits, after its checks, until
    the first start is done; a refused selection never takes a place in line."""
    from twoi2c_hub.spawners.line import LINE

    first = make_spawner(DEMO, make_user("alice"), concurrent_starts=1)
    second = make_spawner(DEMO, make_user("carol"), concurrent_starts=1)
    refused = make_spawner(DEMO, make_user("bob", ["students"]), concurrent_starts=1)
    for spawner in (first, second):
        spawner.user_options = {"profile": "cpu"}
    refused.user_options = {"profile": "gpu"}
    await first.load_user_options()
    waiting = asyncio.ensure_future(second.load_user_options())
    await until(lambda: second._ticket is not None or waiting.done(), "carol's start to join the line")
    # first in line behind the one start going on, not admitted: it waits until that leaves
    assert not waiting.done() and not second._ticket.admitted.done()
    assert LINE.starting == 1 and LINE.ahead_of(second._ticket) == 0
    with pytest.raises(profiles_refused()):
        await refused.load_user_options()
    assert len(LINE.waiting) == 1 and refused._ticket is None
    first.leave_line_after_start()
    await asyncio.wait_for(waiting, 5)
    second.leave_line_after_start()
    assert (LINE.starting, len(LINE.waiting)) == (0, 0)


async def test_the_measured_instance_types_pods_land_on_nodes_that_exist():
    """kube-community's `n2-highmem-16-measured` (measured allocatable figures) has
    `node_label: n2-highmem-16`: its node-share pods ask for nodes with that label."""
    kube = examples_dir() / "kube-community.yaml"
    spawner = make_spawner(kube, make_user(groups=["example-collab:analysis"]))
    spawner.user_options = {"profile": "shared", "resources": "mem_118_gib"}
    await spawner.load_user_options()
    pod = await as_dict(await spawner.get_pod_manifest())
    assert pod["spec"]["nodeSelector"] == {"node.kubernetes.io/instance-type": "n2-highmem-16"}
    assert pod["metadata"]["labels"][LABEL_PREFIX + "mem-limit"] == label_value(spawner.mem_limit)


class CostService:
    """The cost service's budget check as the spawners ask it (`spawners.budget.ask`),
    answering `state`; it keeps what each call asked about (None: the form's question)."""

    def __init__(self, monkeypatch, state: BudgetAnswer):
        from twoi2c_hub.spawners import budget

        self.state, self.asked = state, []
        monkeypatch.setattr(budget, "ask", self.ask)

    async def ask(self, url, token, timeout, username, groups, server):
        self.asked.append(server)
        return self.state


def budget_state(action: str) -> BudgetAnswer:
    """The cost service's answer for bob under one students budget in that state."""
    spent = {"none": 10.0, "deny": 101.0}[action]
    return BudgetAnswer(
        allowed=action == "none",
        action=action,
        message=f"Your budget is used up: students-weekly: {spent:.2f} USD of 100.00 USD used.",
        decisive="students-weekly",
        budgets=[
            BudgetLine(
                budget="students-weekly",
                applies_to="group",
                subject="students",
                unit="money",
                currency="USD",
                used=spent,
                limit=100.0,
                left=max(0.0, 100.0 - spent),
                percent=spent,
                action=action,
                period="weekly",
                text=f"students-weekly: {spent:.2f} USD of 100.00 USD used",
            )
        ],
    )


def test_the_budget_answer_keeps_its_wire_keys_and_leaves_out_what_the_service_left_out():
    answer = budget_state("deny")
    wire = json.loads(json.dumps(answer.wire()))
    assert BudgetAnswer.model_validate(wire) == answer
    assert wire["budgets"][0]["appliesTo"] == "group" and "applies_to" not in wire["budgets"][0]
    assert not {"price_per_hour", "stop_at", "as_of"} & wire.keys()  # never set: never sent
    assert answer.decisive_line().left == 0.0 and answer.stops_every_start


def budget_spawner(monkeypatch, action: str):
    spawner = make_spawner(DEMO, make_user("bob", ["students"]), budget_check_url="http://cost/check")
    return spawner, CostService(monkeypatch, budget_state(action))


def posted(spawner, profile: str = "cpu") -> dict:
    """What the hub does with a posted spawn form: the selection becomes user_options."""
    spawner.user_options = spawner.options_from_form({"profile": [profile]})
    return spawner.user_options


async def test_a_start_from_the_form_asks_the_cost_service_once_and_the_form_once(monkeypatch):
    """The form asks for the person's budgets (its notice); the start asks again, with the
    server: one call per start, however recently the form asked."""
    spawner, cost = budget_spawner(monkeypatch, "none")
    form = await spawner.get_options_form()
    notice = BeautifulSoup(form, "html.parser").get_text(" ", strip=True)
    assert "students-weekly: 10.00 USD of 100.00 USD used" in notice
    posted(spawner)
    resolved = await spawner.resolve_selection(spawner.user_options)
    assert cost.asked == [None, resolved.summary()]


def budget_notice(form: str) -> bool:
    return "twoi2c-budget" in form and "Your budget is used up, so no server can start." in form


async def test_the_form_drawn_under_its_own_starts_budget_refusal_leaves_out_its_notice(monkeypatch):
    """The refusal above the form says it with the same figures; a REST API refusal, or a
    refusal for another reason, leaves the notice on the page opened next."""
    spawner, _ = budget_spawner(monkeypatch, "deny")
    assert budget_notice(await spawner.get_options_form())
    posted(spawner)
    with pytest.raises(profiles_refused()) as refused:
        await spawner.resolve_selection(spawner.user_options)
    assert refused.value.status_code == 403 and refused.value.message.startswith("Your budget is used up")
    assert not budget_notice(await spawner.get_options_form())  # JupyterHub draws it under the refusal
    assert budget_notice(await spawner.get_options_form())  # the page opened next

    spawner.user_options = {"profile": "cpu"}  # a start through the REST API
    with pytest.raises(profiles_refused()):
        await spawner.resolve_selection(spawner.user_options)
    assert budget_notice(await spawner.get_options_form())

    posted(spawner, "gpu")  # not bob's: refused before the budget is asked
    with pytest.raises(profiles_refused()) as refused:
        await spawner.resolve_selection(spawner.user_options)
    assert refused.value.status_code == 403 and "only for members of researchers" in refused.value.message
    assert budget_notice(await spawner.get_options_form())


async def test_a_launch_link_is_shown_once_and_a_posted_choice_is_kept():
    """A link's selection and repository are shown on the form drawn next, once; the
    choice last posted stays selected on every form after (the hub may turn its start
    away before it begins)."""
    from twoi2c_hub.spawners.base import ConfirmLaunch

    def chosen_image(form: str) -> str:
        return BeautifulSoup(form, "html.parser").select_one("#profile-option-cpu--image option[selected]")["value"]

    spawner = make_spawner(DEMO, make_user("bob", ["students"]))
    assert chosen_image(await spawner.get_options_form()) == "scipy"  # the default
    link = {"profile": ["cpu"], "image": ["r"], "repo": ["https://github.com/org/course"]}
    with pytest.raises(ConfirmLaunch):
        spawner.options_from_query(link)
    form = await spawner.get_options_form()
    assert "twoi2c-from-link" in form and "https://github.com/org/course" in form
    assert chosen_image(form) == "r"
    form = await spawner.get_options_form()
    assert "twoi2c-from-link" not in form and "https://github.com/org/course" not in form
    assert chosen_image(form) == "scipy"

    spawner.options_from_form({"profile": ["cpu"], "profile-option-cpu--image": ["r"]})
    for _ in range(2):
        assert chosen_image(await spawner.get_options_form()) == "r"
