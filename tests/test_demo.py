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

from twoi2c_hub import server_account
from twoi2c_hub.cli import demo_homes
from twoi2c_hub.localhub import tagged_processes
from twoi2c_hub.network import free_port

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
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if session.get(f"{url}/user/alice/api", timeout=30).status_code == 200:
                break
            time.sleep(0.3)
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
