"""2i2c's jupyterhub-fancy-profiles as the spawn form (`spawner.form: fancy-profiles`), in
Chromium against a real hub under a base_url: it draws only what the person is offered,
never sees the overrides, starts from their last choice, and every start is still checked."""

import json

import pytest
import yaml
from axe_playwright_python.sync_playwright import Axe
from browsing import PHONE, log_in, screenshot
from playwright.sync_api import expect

from twoi2c_hub import catalog
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def fancy_hub(hub_factory, tmp_path_factory):
    work = tmp_path_factory.mktemp("fancy-config")
    config = demo_config()
    config["spawner"]["form"] = "fancy-profiles"
    config["culling"] = {"enabled": False}
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    return hub_factory(path, "fancy-hub", base_url="/community/")


AXE = Axe()


def profile_list(page) -> list[dict]:
    return page.evaluate("window.profileList")


def start_from_the_form(page, hub, username):
    page.click("#spawn_form button[type=submit]")
    hub.wait_for(lambda: (hub.server(username) or {}).get("ready"), timeout=60, what=f"{username}'s server")
    return hub.api("GET", f"/users/{username}").json()["servers"][""]["user_options"]


def test_fancy_profiles_draws_only_the_persons_profiles_under_a_base_url(page, fancy_hub):  # noqa: F811
    log_in(page, fancy_hub.url, "bob", fancy_hub.password)
    scripts = []
    page.on("response", lambda r: scripts.append((r.url, r.status)) if "fancy-profiles" in r.url else None)
    page.goto(f"{fancy_hub.url}/hub/spawn")
    # its script is served under the hub's base URL, and draws the profiles
    expect(page.locator(".twoi2c-loading")).to_have_count(0, timeout=15_000)
    assert (f"{fancy_hub.url}/hub/fancy-profiles/static/dist/form.js", 200) in scripts
    expect(page.locator("input[name=profile][value=cpu]")).to_be_attached()
    expect(page.locator("input[name=profile][value=gpu]")).to_have_count(0)
    # given what bob is offered and nothing more: no GPU profile, no researchers' choice,
    # no overrides (images, node selectors) and no group names in the page
    profiles = profile_list(page)
    assert [p["slug"] for p in profiles] == ["cpu"]
    choices = profiles[0]["profile_options"]["resources"]["choices"]
    assert "whole-node" not in choices and len(choices) == 3
    page_text = json.dumps(profiles)
    assert "kubespawner_override" not in page_text and "allowed_groups" not in page_text
    assert "n2-highmem" not in page_text and "researchers" not in page_text
    # every choice comes before the Start button (fancy-profiles moves it to its form's end)
    assert page.evaluate("""() => {
        const start = document.querySelector('#spawn_form button[type=submit]');
        return [...document.querySelectorAll('#spawn_form input[name=interface], #spawn_form [name=profile]')]
            .every(e => e.compareDocumentPosition(start) & Node.DOCUMENT_POSITION_FOLLOWING);
    }""")
    screenshot(page, "spawn-fancy-profiles")

    options = start_from_the_form(page, fancy_hub, "bob")
    assert options["profile"] == "cpu" and options["resources"] in choices
    fancy_hub.stop_server("bob")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_with_fancy_profiles_every_price_is_text_on_a_phone_and_the_gpu_is_not_offered(browser, fancy_hub, scheme):
    """fancy-profiles shows no price: ours, beside it, lists what each server gives and
    costs, every price on a 390 px screen; the GPU server this hub cannot give is not
    handed to fancy-profiles to pick, and is listed with why."""
    context = browser.new_context(viewport=PHONE, color_scheme=scheme)
    page = context.new_page()
    try:
        log_in(page, fancy_hub.url, "alice", fancy_hub.password)
        page.goto(f"{fancy_hub.url}/hub/spawn")
        expect(page.locator(".twoi2c-loading")).to_have_count(0, timeout=15_000)
        expect(page.locator("html")).to_have_attribute("data-bs-theme", scheme)
        assert [p["slug"] for p in profile_list(page)] == ["cpu"]
        expect(page.locator("input[name=profile][value=gpu]")).to_have_count(0)
        listing = page.locator(".twoi2c-price-list")
        prices = listing.locator("[data-profile=cpu] .twoi2c-price")
        expect(prices).to_have_count(4)  # each choice of memory and CPU, the whole machine too
        # the shares of one n2-highmem-4 (0.2622 USD an hour) pay their share
        for choice, share in {"mem_6_9_gib": 0.25, "mem_14_gib": 0.5, "mem_28_gib": 1.0}.items():
            expect(listing.locator(f"[data-choice={choice}] .twoi2c-price")).to_have_text(
                f"{0.2622 * share:.2f} USD an hour"
            )
        for price in prices.all():
            expect(price).to_be_visible()
            box = price.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
            assert price.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        gpu = listing.locator("[data-profile=gpu]")
        expect(gpu).to_contain_text("1 GPU")
        expect(gpu.locator(".twoi2c-refused")).to_have_text("Not available: this hub cannot give its servers a GPU.")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, f"spawn-fancy-profiles-prices-{scheme}-phone")
        results = AXE.run(page)
        bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, [(v["id"], [n["target"] for n in v["nodes"]][:5], v["nodes"][0]["failureSummary"]) for v in bad]
    finally:
        context.close()


def test_fancy_profiles_starts_from_the_last_choice_and_its_write_in_works(page, fancy_hub):  # noqa: F811
    log_in(page, fancy_hub.url, "bob", fancy_hub.password)
    # bob's last start: the largest share and the scipy image
    response = fancy_hub.api(
        "POST",
        "/users/bob/server",
        token=fancy_hub.user_token("bob"),
        json={"user_options": {"profile": "cpu", "resources": "mem_14_gib", "image": "scipy"}},
    )
    assert response.status_code in (201, 202), response.text
    fancy_hub.wait_for(lambda: (fancy_hub.server("bob") or {}).get("ready"), what="bob's server")
    fancy_hub.stop_server("bob")

    page.goto(f"{fancy_hub.url}/hub/spawn")
    resources = profile_list(page)[0]["profile_options"]["resources"]["choices"]
    assert [k for k, c in resources.items() if c["default"]] == ["mem_14_gib"]
    expect(page.locator(".twoi2c-loading")).to_have_count(0, timeout=15_000)
    # fancy-profiles' write-in: its select's "Other..." value is not KubeSpawner's
    # its write-in, through its own widgets: "Other..." in the image select, then the image
    # (its select says "unlisted_choice" where KubeSpawner's form says "unlisted-choice")
    image = page.locator("input[name='profile-option-cpu--image']").locator("xpath=..")
    image.click()
    page.get_by_text("Other...", exact=True).click()
    expect(page.locator("input[name='profile-option-cpu--image']")).to_have_value("unlisted_choice")
    page.fill("#profile-option-cpu--image--unlisted-choice", "quay.io/jupyter/minimal-notebook:2025-01-06")
    options = start_from_the_form(page, fancy_hub, "bob")
    assert options["image--unlisted-choice"] == "quay.io/jupyter/minimal-notebook:2025-01-06"
    assert "image" not in options
    fancy_hub.stop_server("bob")


def test_a_forged_fancy_profiles_form_is_refused_with_its_reason(page, fancy_hub):  # noqa: F811
    log_in(page, fancy_hub.url, "bob", fancy_hub.password)
    page.goto(f"{fancy_hub.url}/hub/spawn")
    expect(page.locator(".twoi2c-loading")).to_have_count(0, timeout=15_000)
    # the GPU profile is not bob's: a form edited to ask for it is refused on the hub
    page.evaluate("""() => {
        const form = document.querySelector('#spawn_form');
        form.querySelectorAll('[name=profile]').forEach(e => e.removeAttribute('name'));
        const input = document.createElement('input');
        input.type = 'hidden'; input.name = 'profile'; input.value = 'gpu';
        form.appendChild(input);
    }""")
    page.click("#spawn_form button[type=submit]")
    expect(page.locator(".twoi2c-refusal")).to_contain_text("only for members of researchers")
    expect(page.locator("a.twoi2c-ask-access")).to_be_visible()
    assert fancy_hub.server("bob") is None
    # and the form drawn again starts from a profile bob may start
    assert [p["slug"] for p in profile_list(page) if p["default"]] == ["cpu"]


def test_the_selection_fancy_profiles_posts_reads_as_kubespawners():
    form = {
        "profile": ["cpu"],
        "profile-option-cpu--image": ["unlisted_choice"],
        "profile-option-cpu--image--unlisted-choice": ["  quay.io/x:1  "],
        "profile-option-cpu--resources": ["mem_2_gib"],
    }
    assert catalog.selection_from_form(form) == {
        "profile": "cpu",
        "image--unlisted-choice": "  quay.io/x:1  ",
        "resources": "mem_2_gib",
    }
    # a write-in left behind while a listed choice is picked is not meant
    form["profile-option-cpu--image"] = ["scipy"]
    assert catalog.selection_from_form(form)["image"] == "scipy"
    assert "image--unlisted-choice" not in catalog.selection_from_form(form)


def test_the_page_view_keeps_names_and_defaults_and_drops_the_rest():
    offered = catalog.available(
        [
            {
                "display_name": "A",
                "slug": "a",
                "kubespawner_override": {"image": "secret/image", "environment": {"TOKEN": "x"}},
                "profile_options": {
                    "size": {
                        "display_name": "Size",
                        "choices": {
                            "s": {"display_name": "Small", "kubespawner_override": {"mem_limit": "1G"}},
                            "l": {"display_name": "Large", "allowed_groups": ["staff"]},
                        },
                        "unlisted_choice": {"enabled": True, "kubespawner_override": {"image": "{value}"}},
                    }
                },
            },
            {"display_name": "B", "slug": "b"},
        ],
        ["staff"],
    )
    page = catalog.for_the_page(offered, {"profile": "a", "size": "l"})
    assert "kubespawner_override" not in json.dumps(page) and "allowed_groups" not in json.dumps(page)
    assert [p["default"] for p in page] == [True, False]
    assert {k: c["default"] for k, c in page[0]["profile_options"]["size"]["choices"].items()} == {
        "s": False,
        "l": True,
    }
    assert page[0]["profile_options"]["size"]["unlisted_choice"]["enabled"] is True
    # another profile chosen: it becomes the default, the choices keep theirs
    page = catalog.for_the_page(offered, {"profile": "b"})
    assert [p["default"] for p in page] == [False, True]
    assert page[0]["profile_options"]["size"]["choices"]["s"]["default"] is True
