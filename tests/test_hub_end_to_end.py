"""The demo hub as people use it: a real JupyterHub, the real proxy, real servers.

bob (students) and alice (researchers) log in with the form, see their spawn pages, try
to start what they may and may not start through the form and the REST API.
"""

import os
import re
from pathlib import Path

import pytest
import requests
from bs4 import BeautifulSoup

from twoi2c_hub.paths import examples_dir

pytestmark = pytest.mark.hub


def spawn_page(session, hub) -> BeautifulSoup:
    response = session.get(f"{hub.url}/hub/spawn", timeout=30)
    assert response.status_code == 200
    return BeautifulSoup(response.content, "html.parser")  # the page's own <meta charset>


def offered(page: BeautifulSoup) -> dict[str, list[str]]:
    """profile slug -> the values of every choice in its card (its radios and selects)."""
    result = {}
    for card in page.select(".twoi2c-profile"):
        slug = card["data-profile"]
        result[slug] = [o["value"] for o in card.select("input[type=radio][name^=profile-option-], select option")]
    return result


def post_spawn(session, hub, fields: dict):
    data = {"_xsrf": hub.xsrf(session), **fields}
    return session.post(f"{hub.url}/hub/spawn", data=data, allow_redirects=False, timeout=60)


def test_bob_sees_only_the_student_profiles(demo_hub):
    page = spawn_page(demo_hub.login("bob"), demo_hub)
    assert offered(page) == {"cpu": ["mem_6_9_gib", "mem_14_gib", "mem_28_gib", "scipy", "r", "unlisted-choice"]}
    assert "GPU server" not in page.get_text()


def test_alice_also_sees_the_gpu_profile_and_the_whole_node(demo_hub):
    page = spawn_page(demo_hub.login("alice"), demo_hub)
    choices = offered(page)
    assert list(choices) == ["cpu", "gpu"]
    assert "whole-node" in choices["cpu"]
    # what each gives in plain words and figures, never a cloud machine type's name
    assert "n2-highmem" not in page.get_text()
    whole = page.select_one("#profile-option-cpu--resources [data-choice=whole-node]").get_text(" ", strip=True)
    assert whole.startswith("A whole large machine (researchers only) 100 GiB memory, 14 CPUs guaranteed, up to 15 ")
    assert whole.endswith(" USD an hour")
    gpu = page.select_one("[data-profile=gpu] .twoi2c-resources").get_text(strip=True)
    assert gpu == "14 GiB memory, 3.5 CPUs guaranteed, up to 4, 1 GPU"
    # this hub runs local processes: what it cannot give is said on the form, and a GPU
    # profile cannot be picked (a forged one is refused: see below)
    assert page.select_one("input[name=profile][value=gpu]").has_attr("disabled")
    refused = page.select_one("[data-profile=gpu] .twoi2c-refused").get_text(strip=True)
    assert refused == "Not available: this hub cannot give its servers a GPU."
    note = page.select_one("[data-choice=r].twoi2c-choice-note").get_text(" ", strip=True)
    assert note == "Jupyter R: Not available on this hub: this image (the default environment runs instead)."


def test_a_forged_gpu_profile_is_refused_on_a_hub_without_gpus(demo_hub):
    alice = demo_hub.login("alice")
    response = post_spawn(alice, demo_hub, {"profile": "gpu"})
    assert response.status_code == 400
    refusal = BeautifulSoup(response.text, "html.parser").select_one(".twoi2c-refusal")
    assert "'GPU server' asks for a GPU, which this hub cannot give its servers." in refusal.get_text()
    api = demo_hub.api(
        "POST", "/users/alice/server", token=demo_hub.user_token("alice"), json={"user_options": {"profile": "gpu"}}
    )
    assert api.status_code == 400 and "asks for a GPU" in api.json()["message"]
    assert demo_hub.server("alice") is None


@pytest.mark.parametrize(
    "fields, status, message",
    [
        (
            {"profile": "gpu"},
            403,
            "The server profile 'GPU server' is only for members of researchers. Your groups: students.",
        ),
        (
            {"profile": "cpu", "profile-option-cpu--resources": "mem_999_gib"},
            400,
            "'mem_999_gib' is not a choice of 'Memory and CPU'.",
        ),
        ({"profile": "cpu", "profile-option-cpu--resources": "whole-node"}, 403, "is only for members of researchers"),
        (
            {
                "profile": "cpu",
                "profile-option-cpu--image": "unlisted-choice",
                "profile-option-cpu--image--unlisted-choice": "<script>alert(1)</script>",
            },
            400,
            "'<script>alert(1)</script>' is not a valid value for 'Image': Write an image as registry/name:tag",
        ),
    ],
)
def test_bob_forged_form_is_refused_and_starts_nothing(demo_hub, fields, status, message):
    session = demo_hub.login("bob")
    logged = len(demo_hub.hub.log_file.read_text(errors="replace").splitlines())
    response = post_spawn(session, demo_hub, fields)
    assert response.status_code == status
    page = BeautifulSoup(response.text, "html.parser")
    # what and why in plain words, with a way to ask for access; no internal names
    refusal = page.select_one(".twoi2c-refusal")
    assert refusal.select_one("h2").get_text(strip=True) == "This server cannot start"
    assert message in refusal.get_text()
    assert "Error" not in refusal.get_text() and "ProfileRefused" not in page.get_text()
    assert refusal.select_one("a.twoi2c-ask-access")["href"] == "https://example.org/demo-community/support"
    # the form still selects a profile bob may start, so Start never sends nothing
    checked = [radio["value"] for radio in page.select("input[name=profile]") if radio.has_attr("checked")]
    assert checked == ["cpu"]
    # the hostile value is shown as text, never as markup
    assert not page.find("script", string="alert(1)")
    assert demo_hub.server("bob") is None
    # an expected refusal is one WARNING line in the hub's log, no ERROR, no traceback
    new = demo_hub.hub.log_file.read_text(errors="replace").splitlines()[logged:]
    about = [line for line in new if message.split(":")[0][:40] in line]
    assert len(about) == 1 and about[0].startswith("[W "), new
    assert not [line for line in new if line.startswith("[E ") or "Traceback" in line], new


@pytest.mark.parametrize(
    "user_options, status, message",
    [
        ({"profile": "gpu"}, 403, "The server profile 'GPU server' is only for members of researchers"),
        ({"profile": "cpu", "resources": "made-up"}, 400, "'made-up' is not a choice of 'Memory and CPU'"),
        ({"profile": "cpu", "image--unlisted-choice": "no spaces allowed:1"}, 400, "is not a valid value for 'Image'"),
        ({"profile": "nope"}, 400, "There is no server profile 'nope'"),
        ({"profile": {"nested": "object"}}, 400, "The selection 'profile' must be a string"),
    ],
)
def test_bob_forged_rest_api_spawn_is_refused_and_starts_nothing(demo_hub, user_options, status, message):
    token = demo_hub.user_token("bob")
    logged = len(demo_hub.hub.log_file.read_text(errors="replace").splitlines())
    response = demo_hub.api("POST", "/users/bob/server", token=token, json={"user_options": user_options})
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert "ProfileRefused" not in response.json()["message"]
    assert demo_hub.server("bob") is None
    new = demo_hub.hub.log_file.read_text(errors="replace").splitlines()[logged:]
    assert [line[:3] for line in new if message in line] == ["[W "], new
    assert not [line for line in new if line.startswith("[E ") or "Traceback" in line], new


def test_alice_spawn_starts_a_server_with_the_resolved_profile_then_stops(demo_hub):
    session = demo_hub.login("alice")
    response = post_spawn(
        session,
        demo_hub,
        {
            "profile": "cpu",
            "profile-option-cpu--resources": "mem_6_9_gib",
            "profile-option-cpu--image": "scipy",
        },
    )
    assert response.status_code == 302, response.text
    demo_hub.wait_for(lambda: (demo_hub.server("alice") or {}).get("ready"), timeout=60, what="alice's server")
    server = demo_hub.server("alice")
    assert server["user_options"] == {"profile": "cpu", "resources": "mem_6_9_gib", "image": "scipy"}

    # the server answers through the proxy
    assert session.get(f"{demo_hub.url}/user/alice/api", timeout=30).json()["version"]

    pid, env = demo_hub.server_pid("alice"), demo_hub.server_environ("alice")
    assert env["SCRATCH_BUCKET"] == "s3://demo-community-scratch/alice"
    assert env["TWOI2C_PROFILE"] == "cpu"
    assert env["TWOI2C_IMAGE"] == "quay.io/jupyter/scipy-notebook:2025-01-06"
    assert "HUB_ROLE" not in env  # alice is not an admin
    # node share on n2-highmem-4, a quarter of the node (figures in test_profiles)
    mem_limit = int(env["MEM_LIMIT"])
    assert mem_limit == pytest.approx(28191.2288 * 1024**2 / 4, abs=1)
    assert float(env["CPU_LIMIT"]) == pytest.approx(3.744, abs=0.001)
    # the limits are applied to the process itself
    limits = Path(f"/proc/{pid}/limits").read_text()
    address_space = next(line for line in limits.splitlines() if line.startswith("Max address space"))
    assert address_space.split()[3] == str(mem_limit)
    assert len(os.sched_getaffinity(pid)) == min(4, len(os.sched_getaffinity(0)))

    demo_hub.stop_server("alice")
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/status").read_text().find("zombie") >= 0


def test_alice_rest_api_spawn_of_her_own_image_is_refused_when_not_in_the_regex(demo_hub):
    token = demo_hub.user_token("alice")
    response = demo_hub.api(
        "POST",
        "/users/alice/server",
        token=token,
        json={"user_options": {"profile": "cpu", "image--unlisted-choice": "UPPER/Case:1"}},
    )
    assert response.status_code == 400
    assert demo_hub.server("alice") is None


def test_admin_server_gets_admin_environment(demo_hub):
    token = demo_hub.user_token("admin")
    response = demo_hub.api(
        "POST", "/users/admin/server", token=token, json={"user_options": {"profile": "cpu", "image": "r"}}
    )
    assert response.status_code in (201, 202), response.text
    demo_hub.wait_for(lambda: (demo_hub.server("admin") or {}).get("ready"), timeout=60, what="admin's server")
    env = demo_hub.server_environ("admin")
    assert env["HUB_ROLE"] == "admin"
    # the R image is not on this machine: the default environment runs, and says which image was asked for
    assert env["TWOI2C_IMAGE"] == "quay.io/jupyter/r-notebook:2025-01-06"
    demo_hub.stop_server("admin")


def test_pages_carry_the_community_name_announcement_and_funders(demo_hub):
    response = demo_hub.login("bob").get(f"{demo_hub.url}/hub/spawn", timeout=30)
    page = BeautifulSoup(response.text, "html.parser")
    assert page.title.get_text(strip=True) == "Demo Community Hub"
    assert page.select_one(".twoi2c-community-name").get_text(strip=True) == "Demo Community Hub"
    announcement = page.select_one(".announcement")
    assert "Servers are stopped after an hour without activity." in announcement.get_text()
    assert announcement.select_one("strong").get_text() == "demo"  # Markdown, rendered
    credits = {
        dt.get_text(strip=True): dd
        for dt, dd in zip(page.select(".twoi2c-footer dt"), page.select(".twoi2c-footer dd"), strict=True)
    }
    funder = credits["Funded by"].select_one("a")
    assert (funder.get_text(), funder["href"]) == ("The Example Foundation", "https://example.org/foundation")
    assert credits["Operated by"].get_text(strip=True) == "The Example Operators"
    assert credits["Designed by"].select_one("a")["href"] == "https://example.org/demo-community"


def test_the_login_page_says_who_may_use_the_hub_and_how_to_get_access(demo_hub):
    page = BeautifulSoup(requests.get(f"{demo_hub.url}/hub/login", timeout=30).text, "html.parser")
    assert page.select_one(".twoi2c-login-name").get_text(strip=True) == "Demo Community Hub"
    access = page.select_one(".twoi2c-access")
    assert "students of the data course" in " ".join(access.get_text().split())
    assert access.select_one("a").get_text() == "Ask for an account"
    assert access.select_one("a")["href"] == "https://example.org/demo-community/support"
    # the credits once, in the footer (as on every page), with the logo served by the hub
    assert page.select_one(".twoi2c-login-logo")["src"] == "/hub/logo"
    assert requests.get(f"{demo_hub.url}/hub/logo", timeout=30).headers["Content-Type"] == "image/svg+xml"
    assert [dt.get_text(strip=True) for dt in page.select(".twoi2c-footer dt")] == [
        "Operated by",
        "Funded by",
        "Designed by",
    ]
    assert page.select_one("#login_submit")  # the demo's one way in: its password form


def test_home_and_every_page_lead_to_usage_and_costs_and_admins_to_the_communitys(demo_hub):
    token = demo_hub.user_token("bob")
    response = demo_hub.api("POST", "/users/bob/server", token=token, json={"user_options": {"profile": "cpu"}})
    assert response.status_code in (201, 202), response.text
    demo_hub.wait_for(lambda: (demo_hub.server("bob") or {}).get("ready"), what="bob's server")
    demo_hub.stop_server("bob")
    home = BeautifulSoup(demo_hub.login("bob").get(f"{demo_hub.url}/hub/home", timeout=30).text, "html.parser")
    assert home.select_one(".twoi2c-last-profile strong").get_text() == "Shared CPU server"
    # the demo's budget for students, by its display name, not its key
    budget = home.select_one(".twoi2c-home-budget").get_text(" ", strip=True)
    assert "Students' monthly allowance:" in budget and "of 20.00 USD used" in budget, budget
    assert "students-monthly" not in budget
    links = {a.get_text(strip=True): a["href"] for a in home.select(".twoi2c-home-links a")}
    assert links == {"Your usage": "/services/usage/", "Your costs": "/services/cost/"}
    navbar = [a.get_text(strip=True) for a in home.select("#thenavbar .nav-link")]
    assert navbar == ["Home", "Your usage", "Your costs"]
    # alice is in researchers, the community admins: the community's pages too, on every hub page
    for path in ("/hub/home", "/hub/token", "/hub/spawn"):
        page = BeautifulSoup(demo_hub.login("alice").get(f"{demo_hub.url}{path}", timeout=30).text, "html.parser")
        navbar = {a.get_text(strip=True): a["href"] for a in page.select("#thenavbar .nav-link")}
        assert navbar["Community usage"] == "/services/usage/admin", path
        assert navbar["Community costs"] == "/services/cost/admin", path


def test_a_bad_config_file_stops_the_hub_at_start_with_its_messages(hub_factory, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("hub: {name: Bad}\nprofiles: [{display_name: A, kubespawner_override: {cpu_limit: -1}}]\n")
    with pytest.raises(RuntimeError) as failed:
        hub_factory(config, "bad-hub")
    message = str(failed.value)
    assert "JupyterHub exited with status 1" in message
    assert "profiles[0].kubespawner_override.cpu_limit: must be > 0" in message


def test_after_a_refused_request_the_form_still_selects_a_profile(demo_hub):
    token = demo_hub.user_token("bob")
    refused = demo_hub.api("POST", "/users/bob/server", token=token, json={"user_options": {"profile": "nope"}})
    assert refused.status_code == 400
    page = spawn_page(demo_hub.login("bob"), demo_hub)
    checked = [radio["value"] for radio in page.select("input[name=profile]") if radio.has_attr("checked")]
    assert checked == ["cpu"]  # the default, not nothing (which would start whatever is default unseen)


def test_the_hubs_404_page_says_so_in_words_and_keeps_the_persons_menu(demo_hub):
    bob = demo_hub.login("bob")
    response = bob.get(f"{demo_hub.url}/hub/no-such-page", timeout=30)
    assert response.status_code == 404
    page = BeautifulSoup(response.text, "html.parser")
    assert page.select_one("h1").get_text(strip=True) == "There is no such page"
    assert "None" not in page.get_text()
    assert page.select_one("#login_widget").get_text(" ", strip=True) == "bob Log out"
    assert page.select_one(".twoi2c-way-back a")["href"] == "/hub/home"  # the way back: the menu's pages
    # someone not logged in is offered the login instead
    anonymous = requests.get(f"{demo_hub.url}/hub/no-such-page", timeout=30)
    assert BeautifulSoup(anonymous.text, "html.parser").select_one("#login")["href"].endswith("/hub/login")


@pytest.fixture(scope="module")
def community_hub(hub_factory, tmp_path_factory):
    """The demo community under a base_url, as a hub behind a shared domain is run."""
    return hub_factory(examples_dir() / "demo-community.yaml", "community-hub", base_url="/community/")


def test_everything_works_under_a_base_url(community_hub):
    hub = community_hub
    assert hub.url.endswith("/community")
    bob = hub.login("bob")
    home = BeautifulSoup(bob.get(f"{hub.url}/hub/home", timeout=30).content, "html.parser")
    hrefs = [a["href"] for a in home.select("#thenavbar .nav-link, .twoi2c-home-links a")]
    assert "/community/services/usage/" in hrefs and "/community/services/cost/" in hrefs
    assert all(h.startswith("/community/") for h in hrefs), hrefs
    # a launch link, then the person's Start: the server runs under the prefix
    page = BeautifulSoup(
        bob.get(f"{hub.url}/hub/spawn/bob", params={"profile": "cpu"}, timeout=30).content, "html.parser"
    )
    assert page.select_one("#spawn_form")["action"].startswith("/community/hub/spawn")
    data = {"_xsrf": hub.xsrf(bob), "profile": "cpu"}
    started = bob.post(f"{hub.url}/hub/spawn/bob", data=data, allow_redirects=False, timeout=60)
    assert started.status_code == 302 and started.headers["Location"].startswith("/community/"), started.text
    hub.wait_for(lambda: (hub.server("bob") or {}).get("ready"), what="bob's server")
    try:
        opened = bob.get(f"{hub.url}/user/bob/", timeout=60)  # through the server's OAuth with the hub
        assert opened.status_code == 200 and opened.url.startswith(f"{hub.url}/user/bob/"), opened.url
    finally:
        hub.stop_server("bob")
    # the services' pages, their chart library and their links live under the prefix too
    token = hub.user_token("bob")
    hub.wait_for(
        lambda: requests.get(f"{hub.url}/services/usage/api/v1/sessions", headers={"Authorization": f"token {token}"},
                             timeout=30).json().get("data"),
        what="bob's session",
    )  # fmt: skip
    usage = bob.get(f"{hub.url}/services/usage/", timeout=30)
    assert usage.status_code == 200, usage.text
    usage_page = BeautifulSoup(usage.content, "html.parser")
    assert "/community/services/usage/static/plotly.min.js" in usage.text
    assert bob.get(f"{hub.url}/services/usage/static/plotly.min.js", timeout=30).status_code == 200
    assert usage_page.select_one("#usage-totals td").get_text() == "Shared CPU server"  # the profile's name
    assert all(
        a["href"].startswith(("/community/", "?", "#"))
        for a in usage_page.select("a[href]")
        if not a["href"].startswith("http")
    )
    assert bob.get(f"{hub.url}/services/cost/", timeout=30).status_code == 200
    # the 404 page leads home, under the prefix
    missing = BeautifulSoup(bob.get(f"{hub.url}/hub/nowhere", timeout=30).content, "html.parser")
    assert missing.select_one(".twoi2c-way-back a")["href"] == "/community/hub/home"


def test_the_hub_process_knows_the_ports_its_runner_picked(demo_hub):
    """The runner's proxy, hub and proxy-API ports reach the hub process as reserved, and
    every service listens on a port of its own."""
    from twoi2c_hub.network import RESERVED_PORTS_VARIABLE

    hub = demo_hub.hub
    environ = Path(f"/proc/{hub.process.pid}/environ").read_bytes().split(b"\0")
    variables = dict(v.decode().split("=", 1) for v in environ if b"=" in v)
    reserved = {int(p) for p in variables[RESERVED_PORTS_VARIABLE].split(",")}
    assert reserved == {hub.port, hub.hub_port, hub.proxy_api_port}
    started = re.findall(r"Starting managed service \S+ at http://127.0.0.1:(\d+)", hub.log_file.read_text())
    ports = [int(p) for p in started]
    assert len(ports) >= 2 and len(set(ports)) == len(ports) and not reserved & set(ports)


def test_an_operators_own_services_are_in_the_menu_beside_ours(hub_factory):
    """A service the operator added to the hub (a dashboard) is offered as JupyterHub's menu
    would, under Services, to those who may use it; ours are menu items already."""
    extra = """
c.JupyterHub.services.append({"name": "dashboard", "url": "http://127.0.0.1:9", "display": True})
c.JupyterHub.load_roles.append({"name": "dashboard-users", "groups": ["students"],
                                "scopes": ["access:services!service=dashboard"]})
"""
    hub = hub_factory(examples_dir() / "demo-community.yaml", "other-services-hub", extra_config=extra)

    def offered(username):
        page = BeautifulSoup(hub.login(username).get(f"{hub.url}/hub/home", timeout=30).content, "html.parser")
        return [a.get_text(strip=True) for a in page.select(".twoi2c-other-services a.dropdown-item")]

    assert offered("bob") == ["dashboard"]  # a student, who may use it
    assert offered("alice") == []  # not one of its users: no Services menu at all
