"""The spawn page's cards in Chromium, as alice (researchers) reads them on the demo hub,
on a phone (390 px) and a desktop, light and dark: every price per hour is on screen,
inside the width and not cut off, the GPU server this hub cannot give is disabled with
why, and axe-core finds no serious or critical violation. Screenshots: spawn-cards-*."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from browsing import PHONE, log_in, screenshot
from playwright.sync_api import expect

pytestmark = pytest.mark.hub

AXE = Axe()
DESKTOP = {"width": 1280, "height": 900}
# the shared CPU server's choices are shares of one n2-highmem-4 (0.2622 USD an hour)
SHARES = {"mem_6_9_gib": 0.25, "mem_14_gib": 0.5, "mem_28_gib": 1.0}
N2_HIGHMEM_4 = 0.2622

# where on the page a price is, and whether it is the element seen at its own centre
# (not hidden under, or cut off by, anything around it)
ON_SCREEN = """price => {
    price.scrollIntoView({block: "center"});
    const box = price.getBoundingClientRect();
    const seen = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    return {left: box.left, right: box.right, width: box.width, seen: price.contains(seen),
            clipped: price.scrollWidth > price.clientWidth + 1, text: price.textContent.trim()};
}"""


def serious_axe_violations(page) -> list[str]:
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def prices_on_screen(page, width: int) -> dict[str, str]:
    """The text of every price on the cards, each checked to be seen whole within `width`."""
    shown = {}
    for price in page.locator("#twoi2c-profiles .twoi2c-price").all():
        expect(price).to_be_visible()
        where = price.evaluate(ON_SCREEN)
        assert where["left"] >= 0 and where["right"] <= width, where
        assert where["width"] > 0 and where["seen"] and not where["clipped"], where
        row = price.locator("xpath=ancestor::*[@data-choice or @data-profile][1]")
        shown[row.get_attribute("data-choice") or row.get_attribute("data-profile")] = where["text"]
    return shown


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_every_price_on_the_cards_is_on_screen_and_the_gpu_server_says_why_not(browser, demo_hub, scheme, device):
    viewport = PHONE if device == "phone" else DESKTOP
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    page = context.new_page()
    try:
        log_in(page, demo_hub.url, "alice", demo_hub.password)
        page.goto(f"{demo_hub.url}/hub/spawn")
        expect(page.locator("html")).to_have_attribute("data-bs-theme", scheme)
        shown = prices_on_screen(page, viewport["width"])
        for choice, share in SHARES.items():
            assert shown[choice] == f"{N2_HIGHMEM_4 * share:.2f} USD an hour", shown
        assert shown["whole-node"].endswith(" USD an hour")
        assert set(shown) == {*SHARES, "whole-node"}  # the GPU server shows no price here
        # each choice's resources are on screen too: in its name, or beside it in words
        whole = page.locator("[data-choice=whole-node] .twoi2c-resources")
        expect(whole).to_have_text("100 GiB memory, 14 CPUs guaranteed, up to 15")
        expect(page.locator("[data-choice=mem_14_gib] label")).to_contain_text("GiB")
        # the GPU server: what it gives, why it cannot start here, and no way to pick it
        gpu = page.locator(".twoi2c-profile[data-profile=gpu]")
        expect(gpu.locator(".twoi2c-resources")).to_contain_text("1 GPU")
        expect(gpu.locator(".twoi2c-refused")).to_be_visible()
        expect(gpu.locator("input[name=profile]")).to_be_disabled()
        expect(page.locator("#spawn_form button[type=submit]")).to_be_enabled()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        assert serious_axe_violations(page) == []
        page.locator(".twoi2c-profile").first.scroll_into_view_if_needed()
        screenshot(page, f"spawn-cards-{scheme}-{device}")
    finally:
        context.close()
