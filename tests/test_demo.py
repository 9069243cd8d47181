"""`twoi2c-hub demo`: one command, the whole stack on 127.0.0.1, stopped cleanly by Ctrl-C."""

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from twoi2c_hub import server_account
from twoi2c_hub.demo import demo_homes
from twoi2c_hub.localhub import tagged_processes
from twoi2c_hub.network import free_port
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub


def test_demo_runs_prints_url_and_password_and_ctrl_c_leaves_nothing_behind(tmp_path):
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "twoi2c_hub.cli", "demo", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as a script's background job starts it: with SIGINT ignored, which Python keeps
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    tag = None
    try:
        output = ""
        deadline = time.monotonic() + 120
        while "Password:" not in output and time.monotonic() < deadline and demo.poll() is None:
            output += demo.stdout.readline()
        assert f"is running at http://127.0.0.1:{port}/" in output, output
        password = re.search(r"Password: (\S+)", output).group(1)
        assert "alice (researchers)" in output and "bob (students)" in output and "admin (hub admin)" in output
        tag = re.search(r"TWOI2C_HUB_TAG': '([0-9a-f]+)'", (tmp_path / "jupyterhub_config.py").read_text()).group(1)

        # alice logs in with the printed password and starts a server
        url = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.get(f"{url}/hub/login", timeout=30)
        session.post(
            f"{url}/hub/login",
            data={
                "username": "alice",
                "password": password,
                "_xsrf": session.cookies.get("_xsrf", path="/hub/"),
            },
            timeout=30,
        )
        response = session.post(
            f"{url}/hub/spawn",
            data={
                "profile": "cpu",
                "_xsrf": session.cookies.get("_xsrf", path="/hub/"),
            },
            timeout=60,
        )
        assert response.status_code == 200
        answered = None
        deadline = time.monotonic() + 60
        while answered != 200:
            assert time.monotonic() < deadline, f"alice's server did not answer in 60 s (last: {answered})"
            time.sleep(0.3)
            answered = session.get(f"{url}/user/alice/api", timeout=30).status_code
        running = tagged_processes(tag)
        assert len(running) >= 2  # at least the proxy and alice's server (the hub itself is tagged too)
        if os.geteuid() == 0:  # never as root: as the unprivileged server account
            owners = {Path(f"/proc/{pid}").stat().st_uid for pid in running}
            assert pwd.getpwnam(server_account.DEFAULT_USER).pw_uid in owners, owners
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, rest
    assert "Stopped." in rest
    assert tagged_processes(tag) == []
    shutil.rmtree(demo_homes(tmp_path), ignore_errors=True)


def start_demo(config: Path, data_dir: Path, environment=None):
    """`twoi2c-hub demo --config`, and what it printed up to its 'Press Ctrl-C'."""
    port = free_port()
    command = [sys.executable, "-m", "twoi2c_hub.cli", "demo", "--config", str(config), "--port", str(port)]
    demo = subprocess.Popen(
        [*command, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(environment or {})},
    )
    output = ""
    while "Press Ctrl-C" not in output and demo.poll() is None:
        output += demo.stdout.readline()
    return demo, f"http://127.0.0.1:{port}", output


def stop_demo(demo) -> str:
    """Ctrl-C; what it printed then."""
    if demo.poll() is None:
        demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)
    return rest


@pytest.mark.parametrize("provider", ["workshop", "oidc"])
def test_the_demo_runs_a_config_of_any_provider_and_says_how_to_log_in(provider, tmp_path, request):
    config = demo_config()
    config["culling"] = {"enabled": False}
    environment = {}
    if provider == "workshop":
        config["auth"] = {"provider": "workshop", "workshop": {"group": "students"}}
        environment["TWOI2C_WORKSHOP_PASSWORD"] = ""  # unset: the demo's own password opens it
    else:
        oidc = request.getfixturevalue("oidc_provider")
        config["auth"] = {
            "provider": "oidc",
            "client_id": "twoi2c-demo",
            "client_secret_env": "DEMO_OIDC_SECRET",
            "allowed_groups": ["students"],
            "oidc": {"discovery_url": oidc.url, "groups_claim": "groups"},
        }
        environment["DEMO_OIDC_SECRET"] = "not-so-secret"
    path = tmp_path / f"{provider}.yaml"
    path.write_text(yaml.safe_dump(config))
    demo, url, output = start_demo(path, tmp_path / "data", environment)
    try:
        assert f"is running at {url}/" in output, output
        assert "Traceback" not in output, output
        session = requests.Session()
        if provider == "workshop":
            assert "any name and the workshop password" in output, output
            password = re.search(r"Password: (\S+)", output).group(1)
            session.get(f"{url}/hub/login", timeout=30)
            xsrf = session.cookies.get("_xsrf", path="/hub/")
            data = {"username": "ada", "password": password, "_xsrf": xsrf}
            response = session.post(f"{url}/hub/login", data=data, timeout=30)
        else:
            assert "through the oidc provider" in output, output
            oidc.set_claims("ada-subject", {"preferred_username": "ada", "groups": ["students"]})
            session, response = oidc.log_in(url, "ada-subject")
        assert response.status_code == 200 and "/hub/login" not in response.url, response.url
        assert session.get(f"{url}/hub/api/user", timeout=30).json()["name"] == "ada"
    finally:
        rest = stop_demo(demo)
    assert demo.returncode == 0 and "Stopped." in rest, rest
