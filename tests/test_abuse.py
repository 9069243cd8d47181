"""Attacks on a real demo hub, each of which worked once: they must fail now."""

import requests
from bs4 import BeautifulSoup


def test_a_link_to_the_spawn_page_prefills_the_form_but_starts_nothing(demo_hub):
    alice = demo_hub.login("alice")
    # what another site's link or <img src=...> makes alice's browser send
    response = alice.get(
        f"{demo_hub.url}/hub/spawn/alice",
        params={"profile": "gpu"},
        headers={"Referer": "https://evil.example/", "Sec-Fetch-Site": "cross-site"},
        timeout=30,
    )
    assert response.status_code == 200
    assert demo_hub.server("alice") is None
    page = BeautifulSoup(response.content, "html.parser")
    assert page.select_one("input[name=profile][value=gpu]").has_attr("checked")
    assert "press Start to launch it" in page.get_text()
    # the next visit without a link shows the form as usual, nothing pre-selected by the link
    again = BeautifulSoup(alice.get(f"{demo_hub.url}/hub/spawn/alice", timeout=30).content, "html.parser")
    assert not again.select_one("input[name=profile][value=gpu]").has_attr("checked")
    assert demo_hub.server("alice") is None


def test_the_hubs_cookies_are_same_site(demo_hub):
    session = requests.Session()
    session.get(f"{demo_hub.url}/hub/login", timeout=30)
    response = session.post(
        f"{demo_hub.url}/hub/login?next=",
        data={"username": "bob", "password": demo_hub.password, "_xsrf": session.cookies.get("_xsrf", path="/hub/")},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302
    cookies = response.raw.headers.getlist("Set-Cookie")
    assert cookies and all("samesite=lax" in c.lower() for c in cookies), cookies
