"""A class pressing Start at once: the line (`spawner.concurrent_starts`) and JupyterHub's
own limits told in plain words.

The line on its own (order, places, leaving, estimates), then a real hub that starts one
server at a time (servers that take 2 s to boot), lets three be pending and four run:
the first starts at once, the next two wait their turn and are told their place, the
fourth is asked to come back (and finds their choice kept), the fifth finds the hub full.
"""

import asyncio
import json
import re
import threading
from pathlib import Path

import pytest
import requests
import yaml
from bs4 import BeautifulSoup

from twoi2c_hub.paths import demo_config
from twoi2c_hub.spawners.line import StartLine, in_words

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
BOOT_SECONDS = 2


def test_the_line_is_first_come_first_served():
    async def run():
        line = StartLine()
        first, second, third = line.join(1), line.join(1), line.join(1)
        assert first.admitted.done() and not second.admitted.done()
        assert [line.ahead_of(t) for t in (first, second, third)] == [None, 0, 1]
        assert line.expected_wait(1) is None  # no start finished yet: no estimate
        line.leave(first, took=4.0)
        assert second.admitted.done() and line.ahead_of(third) == 0
        assert line.expected_wait(0) == 4.0 and line.expected_wait(3) == 16.0
        # someone who gives up (their start timed out) leaves their place to the next
        fourth = line.join(1)
        line.leave(third)
        assert third.admitted.cancelled() and line.ahead_of(fourth) == 0
        line.leave(second, took=6.0)
        assert fourth.admitted.done() and (line.starting, len(line.waiting)) == (1, 0)
        assert line.expected_wait(0) == 6.0  # the median of the recent starts

    asyncio.run(run())


def test_two_at_once_and_the_estimate():
    async def run():
        line = StartLine()
        tickets = [line.join(2) for _ in range(5)]
        assert [t.admitted.done() for t in tickets] == [True, True, False, False, False]
        line.leave(tickets[0], took=10.0)
        assert tickets[2].admitted.done() and line.ahead_of(tickets[4]) == 1
        # two start at once: with one ahead, the turn comes after one start's time
        assert line.expected_wait(1) == 10.0 and line.expected_wait(2) == 20.0

    asyncio.run(run())


def test_the_place_in_words():
    assert in_words(0, None) == (
        "The hub is busy: you are next in line to start a server. Keep this page open: your server starts by itself."
    )
    assert in_words(1, 12).startswith("The hub is busy: 1 person is ahead of you in line to start a server.")
    assert "Your turn comes in about 20 seconds." in in_words(1, 12)
    assert "3 people are ahead of you" in in_words(3, 200) and "about 3 minutes" in in_words(3, 200)
    assert "about 1 minute." in in_words(5, 75)


@pytest.fixture(scope="module")
def busy_hub(hub_factory, tmp_path_factory):
    config = demo_config()
    config["auth"] = {"provider": "demo", "users": {f"student-{i}": {"groups": ["students"]} for i in range(5)}}
    config["spawner"].update({"concurrent_starts": 1, "concurrent_spawn_limit": 3, "active_server_limit": 4})
    config["spawner"]["local"] = {"apply_memory_limit": False, "apply_cpu_limit": False}
    path = tmp_path_factory.mktemp("busy") / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    tiny = [str(Path(__import__("sys").executable)), str(BENCHMARKS / "tiny_server.py")]
    return hub_factory(
        path,
        "busy-hub",
        extra_config=f"""
c.ProfileLocalSpawner.cmd = {tiny!r}
c.Spawner.environment["TINY_SERVER_DELAY"] = "{BOOT_SECONDS}"
# the spawn form answers at once with the progress page (JupyterHub waits 10 s by default)
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0.2}}
""",
    )


def submit(hub, session, fields):
    data = {"_xsrf": hub.xsrf(session), **fields}
    return session.post(f"{hub.url}/hub/spawn", data=data, allow_redirects=False, timeout=60)


def follow(hub, session, username: str, messages: list[str]) -> None:
    """The progress stream the spawn-pending page reads, until the server is ready."""
    url = f"{hub.url}/hub/api/users/{username}/server/progress"
    with session.get(url, params={"_xsrf": hub.xsrf(session)}, stream=True, timeout=120) as response:
        assert response.status_code == 200
        for raw in response.iter_lines():
            if raw.startswith(b"data:"):
                event = json.loads(raw[5:])
                messages.append(event.get("message", ""))
                if event.get("ready") or event.get("failed"):
                    return


def process_started(hub, username: str) -> float:
    """When `username`'s server process started, in clock ticks since boot."""
    pid = hub.server_pid(username)
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.mark.hub
def test_a_class_waits_its_turn_and_is_told_in_plain_words(busy_hub):
    hub = busy_hub
    people = [f"student-{i}" for i in range(5)]
    sessions = {name: hub.login(name) for name in people}
    form = {"profile": "cpu", "profile-option-cpu--image": "r"}
    # three press Start one after another: one starts, two wait in line
    for name in people[:3]:
        response = submit(hub, sessions[name], form)
        assert response.status_code == 302 and "spawn-pending" in response.headers["Location"], response.text[:500]
    messages = {name: [] for name in people[:3]}
    followers = [threading.Thread(target=follow, args=(hub, sessions[n], n, messages[n])) for n in people[:3]]
    for thread in followers:
        thread.start()

    # the fourth finds three pending (concurrent_spawn_limit): asked, in words, to come
    # back, on the start page with their choice kept
    refused = submit(hub, sessions["student-3"], form)
    assert refused.status_code == 429 and refused.headers.get("Retry-After")
    page = BeautifulSoup(refused.text, "html.parser")
    notice = page.select_one(".twoi2c-hub-limit")
    assert notice.find("h2").get_text(strip=True) == "The hub is busy"
    text = " ".join(notice.get_text(" ").split())
    assert "Many people are starting servers right now" in text and "Nothing is wrong with your account" in text
    assert re.search(r"Please try again in about \d+ (seconds|minutes): press Start again, your choice is kept", text)
    assert "Too many users" not in page.get_text()
    assert page.select_one("#profile-option-cpu--image option[selected]")["value"] == "r"
    again = BeautifulSoup(sessions["student-3"].get(f"{hub.url}/hub/spawn", timeout=30).text, "html.parser")
    assert again.select_one("#profile-option-cpu--image option[selected]")["value"] == "r"

    for thread in followers:
        thread.join(120)
    # one at a time: each server process started after the one before it had booted
    started = [process_started(hub, n) for n in people[:3]]
    assert started == sorted(started) and all(b - a >= BOOT_SECONDS * 100 * 0.9 for a, b in zip(started, started[1:]))
    # the second was told they were next; the third their place, then that they were next
    waiting = {n: [m for m in messages[n] if m.startswith("The hub is busy")] for n in people[:3]}
    assert waiting["student-0"] == []
    assert waiting["student-1"][0].startswith("The hub is busy: you are next in line")
    assert waiting["student-2"][0].startswith("The hub is busy: 1 person is ahead of you in line")
    assert waiting["student-2"][-1].startswith("The hub is busy: you are next in line")
    # by then one start had finished: the third is told about how long
    assert "Your turn comes in about 10 seconds." in waiting["student-2"][-1]

    # the fourth comes back and starts (three run, none pending); the fifth finds the hub full
    assert submit(hub, sessions["student-3"], form).status_code == 302
    hub.wait_for(lambda: (hub.server("student-3") or {}).get("ready"), timeout=60, what="the fourth server")
    full = submit(hub, sessions["student-4"], form)
    assert full.status_code == 429
    notice = BeautifulSoup(full.text, "html.parser").select_one(".twoi2c-hub-limit")
    assert notice.find("h2").get_text(strip=True) == "The hub is full"
    text = " ".join(notice.get_text(" ").split())
    assert "This hub runs at most 4 servers at once, and all of them are in use right now." in text
    assert "servers nobody is using stop after 60 minutes" in text  # the demo's culling timeout
    for name in people[:4]:
        hub.stop_server(name)
    # everyone has left the line
    token = {"Authorization": f"token {hub.service_token}"}
    metrics = requests.get(f"{hub.url}/hub/metrics", headers=token, timeout=30)
    assert metrics.status_code == 200, metrics.text[:300]
    assert "twoi2c_servers_waiting_to_start 0.0" in metrics.text and "twoi2c_servers_starting 0.0" in metrics.text


def test_the_error_page_words_the_same_refusals():
    """The hub's error page (a start without a form, e.g. a hub with no profiles) uses the
    same words, with a way back to the start page."""
    import jinja2

    from twoi2c_hub.paths import templates_dir

    limits = (
        jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=True)
        .get_template("hub_limits.html")
        .module
    )
    busy = "Too many users trying to log in right now. Try again in 2 minutes."
    full = "Active user limit exceeded. Try again in a few minutes."
    assert (str(limits.kind(busy)), str(limits.kind(full)), str(limits.kind("Not found"))) == ("busy", "full", "")
    assert str(limits.heading(busy)) == "The hub is busy" and str(limits.heading(full)) == "The hub is full"
    page = BeautifulSoup(str(limits.explain(busy, False, "/hub/", 0, None, None)), "html.parser")
    assert "Please try again in about 2 minutes: the start page keeps what you chose." in " ".join(
        page.get_text(" ").split()
    )
    assert page.find("a", string="Back to the start page")["href"] == "/hub/spawn"
    page = BeautifulSoup(str(limits.explain(full, False, "/hub/", 1, None, "https://help.example.org")), "html.parser")
    text = " ".join(page.get_text(" ").split())
    assert "This hub runs at most 1 server at once" in text and "Please try again in a few minutes." in text
    assert page.find("a", string="Ask for help")["href"] == "https://help.example.org"


def test_a_place_given_up_while_waiting_is_skipped():
    async def run():
        line = StartLine()
        first, second, third = line.join(1), line.join(1), line.join(1)
        second.admitted.cancel()  # its start was cancelled before it left the line
        line.leave(first, took=1.0)
        assert third.admitted.done() and not third.admitted.cancelled() and line.starting == 1

    asyncio.run(run())
