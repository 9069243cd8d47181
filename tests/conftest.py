import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# OAuthenticator's HTTP mocks (its `client` fixture), shipped in its wheel
pytest_plugins = ["oauthenticator.tests.conftest", "browsing"]

# kubernetes_asyncio reads KUBECONFIG when it is imported: set it before anything does
os.environ["KUBECONFIG"] = str(Path(__file__).parent / "data" / "fake-kubeconfig.yaml")

import re
import secrets
import shutil
import tempfile
import time
import urllib.parse
import uuid

import pytest
import requests

from twoi2c_hub import server_account
from twoi2c_hub.localhub import LocalHub, end_tagged_processes, process_tags
from twoi2c_hub.paths import examples_dir

# every process a test run starts carries a tag naming the run's own pid:
# pytest-<pid>-<unique>; another run on the same machine has another pid. The run's
# pytest-xdist workers name the pytest process that started them (a worker's command line
# does not say pytest, so another worker would take it for a run that died)
RUN_PID = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()
TEST_TAG_PREFIX = f"pytest-{RUN_PID}-"


def _run_is_alive(pid: int) -> bool:
    try:
        return b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def pytest_sessionstart(session):
    """End what earlier runs that died (SIGKILL) left behind: hubs, proxies, servers,
    databases. Processes of runs still going, beside this one, are left alone."""
    for tag in process_tags("pytest-"):
        match = re.fullmatch(r"pytest-(\d+)-\w+", tag)
        if match is None or not _run_is_alive(int(match.group(1))):
            end_tagged_processes(tag)


# what a test starts, told by the fixtures it uses (see pyproject.toml's markers):
# `make check` runs the tests that start none of them
STARTED_BY = {"hub": "hub_factory", "browser": "browser", "postgres": "postgres_server"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by them
def pytest_collection_modifyitems(items):
    for item in items:
        for marker, fixture in STARTED_BY.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used a hub shows why the hub said what it said: the services that
    exited and the last lines of the hub's log (services log there too)."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, HubClient):
                log = value.hub.log_file.read_text(errors="replace") if value.hub.log_file.exists() else ""
                exits = [line for line in log.splitlines() if "exited with status" in line or "Error:" in line]
                tail = "\n".join(log.splitlines()[-30:])
                report.sections.append((f"hub {name}: {value.hub.log_file}", "\n".join(exits[-10:]) + "\n...\n" + tail))
    return report


class HubClient:
    """A running test hub and the ways a person or a program talks to it."""

    def __init__(self, hub: LocalHub, password: str, service_token: str):
        self.hub = hub
        self.url = hub.url
        self.password = password
        self.service_token = service_token

    def user_model(self, username: str) -> dict | None:
        response = self.api("GET", f"/users/{urllib.parse.quote(username, safe='')}")
        return response.json() if response.status_code == 200 else None

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {token or self.service_token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def login(self, username: str) -> requests.Session:
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=30)
        response = session.post(
            f"{self.url}/hub/login?next=",
            data={"username": username, "password": self.password, "_xsrf": self.xsrf(session)},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, f"login as {username} failed: {response.status_code}"
        return session

    def server_pid(self, username: str) -> int:
        """The process of `username`'s running server (the local spawner's)."""
        return self.api("GET", f"/users/{username}").json()["servers"][""]["state"]["pid"]

    def server_environ(self, username: str) -> dict[str, str]:
        """The environment of `username`'s running server process."""
        raw = Path(f"/proc/{self.server_pid(username)}/environ").read_bytes().split(b"\0")
        return dict(item.decode().split("=", 1) for item in raw if b"=" in item)

    def xsrf(self, session: requests.Session) -> str | None:
        """The hub's XSRF cookie of `session` (its path is the hub's, under any base_url)."""
        return session.cookies.get("_xsrf", path=self.hub.base_url + "hub/")

    def user_token(self, username: str) -> str:
        response = self.api("POST", f"/users/{username}/tokens", json={"note": "e2e test", "expires_in": 600})
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def server(self, username: str) -> dict | None:
        model = self.api("GET", f"/users/{username}").json()
        return model["servers"].get("")

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.hub.log_tail()}")

    def stop_server(self, username: str):
        response = self.api("DELETE", f"/users/{username}/server")
        assert response.status_code in (202, 204), response.text
        # the local spawner may take SIGINT's 10 s, SIGTERM's 5 s and SIGKILL's 5 s
        self.wait_for(lambda: self.server(username) is None, timeout=60, what=f"{username}'s server to stop")


# A run under libfaketime (`faketime -f +NNs pytest ...`, see CONTRIBUTING.md): every process
# of a test hub keeps the tests' clock
FAKE_CLOCK = {
    k: v
    for k, v in os.environ.items()
    if "FAKETIME" in os.environ and (k == "LD_PRELOAD" or k.startswith(("FAKETIME", "DONT_FAKE")))
}


@pytest.fixture(scope="session")
def hub_factory(tmp_path_factory):
    """Start a hub from a community config file; every hub started is stopped at the end.

    Each hub has a service token that may manage users, servers and tokens.
    """
    hubs = []

    def start(
        config_path, name="hub", extra_config="", environment=None, server_account=None, base_url="/", port=None
    ) -> HubClient:
        password = secrets.token_urlsafe(12)
        service_token = secrets.token_hex(32)
        extra = f"""
c.JupyterHub.services.append({{"name": "e2e-tests", "api_token": {service_token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "e2e-tests",
    "scopes": ["admin:users", "admin:servers", "admin:server_state", "tokens", "list:users", "read:metrics"],
    "services": ["e2e-tests"],
}})
{extra_config}
"""
        if FAKE_CLOCK:  # JupyterHub gives its services and servers only the variables it keeps
            extra += f"""
for _service in c.JupyterHub.services:
    if "command" in _service:
        _service.setdefault("environment", {{}}).update({FAKE_CLOCK!r})
c.Spawner.environment.update({FAKE_CLOCK!r})
"""
        hub = LocalHub(
            config_path,
            tmp_path_factory.mktemp(name),
            password=password,
            extra_config=extra,
            tag=TEST_TAG_PREFIX + uuid.uuid4().hex,
            environment=environment,
            server_account=server_account,
            # where the server user can reach them (pytest's own temp dirs are private)
            homes_dir=tempfile.mkdtemp(prefix="twoi2c-test-homes-") if server_account else None,
            base_url=base_url,
            port=port,  # (a hub whose own address is in its config: the fleet's operator hub)
        )
        hubs.append(hub)
        hub.start(timeout=90)
        return HubClient(hub, password, service_token)

    yield start

    def stop(hub: LocalHub) -> None:
        hub.stop()
        if hub.server_account:
            shutil.rmtree(hub.homes_dir, ignore_errors=True)

    # all at once: each waits seconds for its servers and services to end
    with ThreadPoolExecutor(max(1, len(hubs))) as pool:
        list(pool.map(stop, hubs))


@pytest.fixture(scope="session")
def demo_hub(hub_factory):
    """The demo community's hub (examples/demo-community.yaml), run as `twoi2c-hub demo`
    runs it: as root, every server runs as the unprivileged server account."""
    account = server_account.ensure() if os.geteuid() == 0 else None
    return hub_factory(examples_dir() / "demo-community.yaml", "demo-hub", server_account=account)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    from oidc_provider import OIDCProvider

    provider = OIDCProvider(tmp_path_factory.mktemp("oidc"), TEST_TAG_PREFIX + uuid.uuid4().hex)
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def postgres_server():
    from postgres import PostgresServer

    server = PostgresServer(TEST_TAG_PREFIX + uuid.uuid4().hex)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """An empty accounting database, migrated to the latest schema: SQLite and PostgreSQL."""
    from twoi2c_hub.accounting.db import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    upgrade(url)
    return url


@pytest.fixture
def db(database_url):
    """A session on an empty accounting database (SQLite and PostgreSQL)."""
    from twoi2c_hub.accounting.db import make_engine, session_maker

    engine = make_engine(database_url)
    with session_maker(engine)() as session:
        yield session
    engine.dispose()
