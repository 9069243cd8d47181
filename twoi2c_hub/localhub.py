"""Run a whole hub on 127.0.0.1: JupyterHub, the Python proxy, local servers, services.

Used by `twoi2c-hub demo` and by the end-to-end tests. JupyterHub starts the proxy and
every server in process sessions of their own, so stopping the hub's process group is
not enough: every process started for this hub carries an environment tag, and `stop()`
ends whatever still carries it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .network import RESERVED_PORTS_VARIABLE, free_port
from .server_account import ServerAccount, reachable

TAG_VARIABLE = "TWOI2C_HUB_TAG"


def proxy_command() -> list[str]:
    """The Python configurable-http-proxy of this Python (not Node's, if on PATH), with
    room for many requests at once (see `twoi2c_hub.proxy`)."""
    return [sys.executable, "-m", "twoi2c_hub.proxy"]


def _environments():
    """(pid, environment variables) of every process this user may read, but this one."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            yield int(entry.name), (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue


def tagged_processes(tag: str) -> list[int]:
    """PIDs of processes whose environment carries TAG_VARIABLE=tag."""
    marker = f"{TAG_VARIABLE}={tag}".encode()
    return [pid for pid, variables in _environments() if marker in variables]


def process_tags(prefix: str) -> set[str]:
    """The tags starting with `prefix` that running processes carry."""
    marker = f"{TAG_VARIABLE}={prefix}".encode()
    return {
        variable.split(b"=", 1)[1].decode(errors="replace")
        for _, variables in _environments()
        for variable in variables
        if variable.startswith(marker)
    }


def end_tagged_processes(tag: str, *, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process tagged `tag`; returns those found."""
    found = tagged_processes(tag)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in tagged_processes(tag):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while tagged_processes(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
    return found


def _default_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class LocalHub:
    """A JupyterHub process configured from a community config file."""

    def __init__(
        self,
        community_config: str | os.PathLike,
        data_dir: str | os.PathLike,
        *,
        port: int | None = None,
        password: str | None = None,
        extra_config: str = "",
        tag: str | None = None,
        log_file: str | os.PathLike | None = None,
        environment: dict[str, str] | None = None,
        server_account: ServerAccount | None = None,
        homes_dir: str | os.PathLike | None = None,
        base_url: str = "/",
    ):
        self.community_config = Path(community_config).resolve()
        # the hub's prefix, e.g. /community/ (JupyterHub's base_url)
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.hub_port = free_port()  # the hub's API, behind the proxy
        self.proxy_api_port = free_port()
        self.password = password
        self.extra_config = extra_config
        self.tag = tag or uuid.uuid4().hex
        self.log_file = Path(log_file) if log_file else self.data_dir / "jupyterhub.log"
        self.environment = dict(environment or {})
        self.process: subprocess.Popen | None = None
        # servers run as this unprivileged user (see twoi2c_hub.server_account), their
        # homes where it can reach them, outside the hub's private data directory
        self.server_account = server_account
        self.homes_dir = Path(homes_dir).resolve() if homes_dir else self.data_dir / "homes"

    @property
    def url(self) -> str:
        """Where the hub answers, with its base_url (without the trailing /)."""
        return f"http://127.0.0.1:{self.port}{self.base_url.rstrip('/')}"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        homes = self.homes_dir
        homes.mkdir(parents=True, exist_ok=True)
        servers = ""
        if self.server_account:
            if homes.stat().st_uid != os.geteuid():  # in /tmp, someone else may have made it first
                raise RuntimeError(f"{homes} belongs to another user: choose another homes dir")
            homes.chmod(0o711)  # each home inside is private to the server user
            if not reachable(homes, self.server_account.user):
                raise RuntimeError(f"{homes} is not reachable by {self.server_account.user}: choose another homes dir")
            servers = (
                f"c.ProfileLocalSpawner.server_user = {self.server_account.user!r}\n"
                f"c.ProfileLocalSpawner.python = {self.server_account.python!r}\n"
            )
        path = self.data_dir / "jupyterhub_config.py"
        path.write_text(f"""\
# Written by twoi2c_hub.localhub for a hub on 127.0.0.1; see {self.community_config}
from twoi2c_hub import configure

configure(c, {str(self.community_config)!r})

c.JupyterHub.bind_url = "http://127.0.0.1:{self.port}{self.base_url}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {self.hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.ConfigurableHTTPProxy.command = {proxy_command()!r}
c.ConfigurableHTTPProxy.pid_file = {str(self.data_dir / "proxy.pid")!r}
c.JupyterHub.db_url = {"sqlite:///" + str(self.data_dir / "jupyterhub.sqlite")!r}
c.JupyterHub.cookie_secret_file = {str(self.data_dir / "jupyterhub_cookie_secret")!r}
c.JupyterHub.pid_file = {str(self.data_dir / "jupyterhub.pid")!r}
c.ProfileLocalSpawner.system_users = False
c.ProfileLocalSpawner.home_dir_template = {str(homes) + "/{username}"!r}
{servers}c.Spawner.environment = {{{TAG_VARIABLE!r}: {self.tag!r}}}
for _service in c.JupyterHub.get("services", []):
    _service.setdefault("environment", {{}})[{TAG_VARIABLE!r}] = {self.tag!r}

{self.extra_config}
""")
        return path

    def start(self, timeout: float = 60) -> None:
        config = self.write_config()
        env = {**os.environ, **self.environment, TAG_VARIABLE: self.tag}
        # bound only once the hub runs: its wiring must not pick them for a service
        env[RESERVED_PORTS_VARIABLE] = ",".join(map(str, (self.port, self.hub_port, self.proxy_api_port)))
        if self.password is not None:
            env["TWOI2C_DEMO_PASSWORD"] = self.password
        log = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Ctrl-C as usual in the hub and what it starts, even when this process was started
            # with SIGINT ignored (a script's background job): JupyterHub stops its services
            # with SIGINT, and one that inherited it ignored (the idle culler) is waited for 10 s
            preexec_fn=_default_interrupt,
        )
        log.close()
        # waited for while it makes progress (its log grows: a hub and its services starting
        # on busy cores), given up after `timeout` seconds without any, or ten times that in all
        began = last_progress = time.monotonic()
        log_size = 0
        while time.monotonic() - last_progress < timeout and time.monotonic() - began < 10 * timeout:
            size = self.log_file.stat().st_size if self.log_file.exists() else 0
            if size != log_size:
                log_size, last_progress = size, time.monotonic()
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"JupyterHub exited with status {self.process.returncode}; see {self.log_file}:\n" + self.log_tail()
                )
            try:
                # through the proxy: ready once the hub has registered its route
                with urllib.request.urlopen(f"{self.url}/hub/api/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"JupyterHub did not answer (nothing new in its log for {timeout} s); see {self.log_file}:\n"
            + self.log_tail()
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 60, *, end_leftovers: bool = True) -> None:
        """Stop the hub (it stops the proxy and, with cleanup_servers, the servers),
        then end anything left that was started for it (unless `end_leftovers` is False:
        a restart with cleanup_servers = False keeps the servers running)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if end_leftovers:
            end_tagged_processes(self.tag)
