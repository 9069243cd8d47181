"""deploy/one-machine, followed as docs/one-machine.md says: the systemd units pass
`systemd-analyze verify` and their commands run, the nginx site passes `nginx -t` and
the Caddyfile `caddy validate`, the files agree with each other (ports, paths, host name,
secrets), and a person logs in and uses a server through nginx over TLS."""

import asyncio
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from jupyterhub import orm
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect
from traitlets.config import Config

from twoi2c_hub import server_account
from twoi2c_hub.config.loading import parse_config
from twoi2c_hub.network import free_port
from twoi2c_hub.paths import examples_dir

ONE_MACHINE = Path(__file__).parent.parent / "deploy" / "one-machine"
GUIDE = Path(__file__).parent.parent / "docs" / "one-machine.md"
UNITS = ["twoi2c-hub.service", "twoi2c-hub-backup.service", "twoi2c-hub-backup.timer"]
HOST = "hub.example.org"
CERTIFICATE = f"/etc/letsencrypt/live/{HOST}/fullchain.pem"
PRIVATE_KEY = f"/etc/letsencrypt/live/{HOST}/privkey.pem"
VENV = "/opt/twoi2c-hub/venv"
ETC = "/etc/twoi2c-hub"
STATE = "/var/lib/twoi2c-hub"


def shipped(name: str) -> str:
    return (ONE_MACHINE / name).read_text()


def replaced(text: str, replacements: dict[str, str]) -> str:
    """`text` with each key replaced; each must be there (the shipped file kept its shape)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the shipped file: update this test"
        text = text.replace(old, new)
    return text


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    # make test installs it (DEBIAN_PACKAGES in the Makefile): missing is a failure, not a skip
    assert path is not None, f"{name} is not installed: run make test (or apt-get install it)"
    return path


def unit_lines(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


def environment_file() -> dict[str, str]:
    """The variables of the env file template, as an operator fills it in."""
    names = re.findall(r"^#?([A-Z_]+)=", shipped("twoi2c-hub.env"), re.MULTILINE)
    return {name: os.urandom(32).hex() for name in names}


@pytest.fixture
def installed(tmp_path):
    """The files where the guide puts them, under tmp_path: /etc/twoi2c-hub, /var/lib/twoi2c-hub,
    /var/backups/twoi2c-hub; the hub's venv is this Python's."""
    etc, state, backups = tmp_path / "etc", tmp_path / "state", tmp_path / "backups"
    for directory in (etc, state):
        directory.mkdir(mode=0o700)
    paths = {VENV: sys.prefix, ETC: str(etc), STATE: str(state), "/var/backups/twoi2c-hub": str(backups)}

    def install(name: str) -> str:
        text = shipped(name)
        for old, new in paths.items():
            text = text.replace(old, new)
        return text

    (etc / "community.yaml").write_text(install("community.yaml"))
    (etc / "jupyterhub_config.py").write_text(install("jupyterhub_config.py"))
    (etc / "env").write_text("".join(f"{k}={v}\n" for k, v in environment_file().items()))
    (etc / "env").chmod(0o600)
    units = tmp_path / "units"
    units.mkdir()
    for name in UNITS:
        (units / name).write_text(install(name))
    return tmp_path


def test_the_units_pass_systemd_analyze_verify(installed):
    verify = tool("systemd-analyze")
    units = [str(installed / "units" / name) for name in UNITS]
    result = subprocess.run([verify, "verify", *units], capture_output=True, text=True, cwd=installed, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    # the check is real: a misspelt key and a missing program are caught
    unit = installed / "units" / "twoi2c-hub.service"
    shipped_unit = unit.read_text()
    for mistake, said in [
        (shipped_unit.replace("ExecStartPre=", "ExecStratPre="), "Unknown key 'ExecStratPre'"),
        (shipped_unit.replace(sys.prefix, "/nonexistent"), "/nonexistent/bin/jupyterhub is not executable"),
    ]:
        unit.write_text(mistake)
        result = subprocess.run([verify, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert said in result.stderr


@pytest.mark.slow
def test_the_units_commands_check_the_config_make_the_database_and_back_it_up(installed):
    """What systemd runs before the hub (check-config, db upgrade) and the daily backup,
    run as the units say, with the secrets of the env file."""
    hub = (installed / "units" / "twoi2c-hub.service").read_text()
    backup = (installed / "units" / "twoi2c-hub-backup.service").read_text()
    assert unit_lines(hub, "EnvironmentFile") == unit_lines(backup, "EnvironmentFile") == [str(installed / "etc/env")]
    env = {**os.environ, **dict(line.split("=", 1) for line in (installed / "etc/env").read_text().splitlines())}
    for command in unit_lines(hub, "ExecStartPre"):
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert (installed / "state" / "usage.sqlite").is_file()
    # the hub's own database, as JupyterHub leaves it after its first start, and the upgrade
    # the guide runs on it (with the shipped config, which needs the env file's secrets)
    orm.new_session_factory(f"sqlite:///{installed}/state/jupyterhub.sqlite")
    config = installed / "etc" / "jupyterhub_config.py"
    upgrade = [sys.executable, "-m", "jupyterhub", "upgrade-db", "-f", str(config)]
    result = subprocess.run(upgrade, capture_output=True, text=True, env=env, cwd=installed, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "upgrade-db -f /etc/twoi2c-hub/jupyterhub_config.py" in GUIDE.read_text()
    outputs = []
    for key in ("ExecStartPre", "ExecStart", "ExecStartPost"):
        for command in unit_lines(backup, key):
            command = command.replace("%%", "%")  # systemd's escape of %
            result = subprocess.run(shlex.split(command), capture_output=True, text=True, env=env, timeout=120)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            outputs.append(result.stdout)
    archives = list((installed / "backups").glob("twoi2c-hub-*.tar"))
    assert [a.name for a in archives] == [time.strftime("twoi2c-hub-%Y-%m-%d.tar", time.gmtime())], outputs
    assert "the hub's people" not in "".join(outputs)  # they are in it (--hub-db)
    assert oct((installed / "backups").stat().st_mode & 0o777) == "0o700"


def test_the_files_agree_on_ports_paths_host_and_secrets(tmp_path, monkeypatch):
    """jupyterhub_config.py binds where nginx and Caddy forward; the callback URL, nginx's
    server_name and Caddy's site are one host; every secret the hub reads is in the env file;
    the server account is the one `twoi2c-hub server-account` makes."""
    for name, value in environment_file().items():
        monkeypatch.setenv(name, value)
    community = yaml.safe_load(shipped("community.yaml"))
    (tmp_path / "community.yaml").write_text(shipped("community.yaml"))
    code = replaced(shipped("jupyterhub_config.py"), {f"{ETC}/community.yaml": str(tmp_path / "community.yaml")})
    c = Config()
    exec(compile(code, "jupyterhub_config.py", "exec"), {"c": c})

    nginx, caddy = shipped("nginx-twoi2c-hub.conf"), shipped("Caddyfile")
    assert c.JupyterHub.public_url == f"https://{HOST}/"
    upstream = c.JupyterHub.bind_url.removeprefix("http://")
    assert upstream.startswith("127.0.0.1:")
    assert re.findall(r"proxy_pass http://([^;/]+);", nginx) == [upstream]
    assert re.findall(r"reverse_proxy (\S+)", caddy) == [upstream]
    assert community["auth"]["callback_url"] == f"https://{HOST}/hub/oauth_callback"
    assert set(re.findall(r"server_name (\S+);", nginx)) == {HOST}
    assert re.search(rf"^{re.escape(HOST)} {{", caddy, re.MULTILINE)

    env_names = set(environment_file())
    assert {"JPY_COOKIE_SECRET", "CONFIGPROXY_AUTH_TOKEN", "JUPYTERHUB_CRYPT_KEY", "PGPASSWORD"} <= env_names
    assert community["auth"].get("client_secret_env", "OAUTH_CLIENT_SECRET") in env_names

    # the hub's and the accounting's databases are in the unit's StateDirectory (the backups'
    # --hub-db is the hub's)
    hub_unit, backup_unit = shipped("twoi2c-hub.service"), shipped("twoi2c-hub-backup.service")
    assert unit_lines(hub_unit, "StateDirectory") == ["twoi2c-hub"]
    assert c.JupyterHub.db_url == f"sqlite:///{STATE}/jupyterhub.sqlite"
    assert f"--hub-db {c.JupyterHub.db_url} " in backup_unit
    assert community["usage"]["database_url"] == f"sqlite:///{STATE}/usage.sqlite"
    assert unit_lines(hub_unit, "ExecStart") == [f"{VENV}/bin/jupyterhub -f {ETC}/jupyterhub_config.py"]

    local = community["spawner"]["local"]
    assert local["server_user"] == server_account.DEFAULT_USER
    assert local["python"] == f"{server_account.DEFAULT_PATH}/bin/python"
    assert c.ProfileLocalSpawner.server_user == server_account.DEFAULT_USER


def guide_auth_examples() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    return [block for block in blocks if block.startswith("auth:")]


def test_every_auth_example_of_the_guide_passes_check_config_in_the_shipped_config():
    examples = guide_auth_examples()
    assert [yaml.safe_load(e)["auth"]["provider"] for e in examples] == ["github", "cilogon", "oidc"]
    community = yaml.safe_load(shipped("community.yaml"))
    for example in examples:
        auth = yaml.safe_load(example)["auth"]
        assert auth["callback_url"] == community["auth"]["callback_url"]
        parse_config(yaml.safe_dump({**community, "auth": auth}))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and the guide's host name."""
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory / "cert.pem", directory / "key.pem"


def nginx_prefix(directory: Path, certificate, upstream_port: int, http_port: int, https_port: int) -> Path:
    """The shipped site in a main config of nginx's own, as Debian's nginx.conf includes
    sites-enabled/: ports and certificate of the test, everything else as shipped."""
    cert, key = certificate
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "www").mkdir(exist_ok=True)
    site = replaced(
        shipped("nginx-twoi2c-hub.conf"),
        {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen [::]:80;\n": "",
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "listen [::]:443 ssl;\n": "",
            CERTIFICATE: str(cert),
            PRIVATE_KEY: str(key),
            "proxy_pass http://127.0.0.1:8000;": f"proxy_pass http://127.0.0.1:{upstream_port};",
            "root /var/www/html;": f"root {directory / 'www'};",
        },
    )
    (directory / "twoi2c-hub").write_text(site)
    main = directory / "nginx.conf"
    main.write_text(f"""\
pid {directory}/nginx.pid;
error_log stderr;
master_process off;
events {{}}
http {{
    access_log {directory}/logs/access.log;
    include {directory}/twoi2c-hub;
}}
""")
    return main


def test_the_nginx_site_passes_nginx_t(tmp_path, certificate):
    nginx = tool("nginx")
    main = nginx_prefix(tmp_path, certificate, free_port(), free_port(), free_port())
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(main)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr and "test is successful" in result.stderr
    # the check is real: a directive nginx does not know fails it
    (tmp_path / "twoi2c-hub").write_text(
        (tmp_path / "twoi2c-hub").read_text().replace("proxy_buffering", "proxy_bufering")
    )
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(main)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0 and 'unknown directive "proxy_bufering"' in result.stderr


def test_the_caddyfile_passes_caddy_validate(tmp_path):
    caddy = tool("caddy")
    (tmp_path / "Caddyfile").write_text(shipped("Caddyfile"))
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    command = [caddy, "validate", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, **home})
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def nginx_in_front(hub_factory, tmp_path_factory, certificate):
    """nginx with the shipped site, in front of a real hub on loopback (the demo community,
    its servers run as the server account as root, public_url as the shipped config sets
    it): the hub, its https and http addresses."""
    http_port, https_port = free_port(), free_port()
    https = f"https://127.0.0.1:{https_port}"
    public_url = replaced(shipped("jupyterhub_config.py"), {f"https://{HOST}/": f"{https}/"})
    hub = hub_factory(
        examples_dir() / "demo-community.yaml",
        "behind-nginx",
        server_account=server_account.ensure() if os.geteuid() == 0 else None,
        extra_config=next(line for line in public_url.splitlines() if line.startswith("c.JupyterHub.public_url")),
    )
    prefix = tmp_path_factory.mktemp("nginx")
    main = nginx_prefix(prefix, certificate, hub.hub.port, http_port, https_port)
    process = subprocess.Popen(
        [tool("nginx"), "-p", str(prefix), "-e", "stderr", "-c", str(main), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port(https_port, process)
        yield hub, https, f"http://127.0.0.1:{http_port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_person_logs_in_and_uses_a_server_through_nginx_over_tls(nginx_in_front, certificate):
    demo_hub, https, http = nginx_in_front
    cert = str(certificate[0])
    # plain http is sent to https
    redirect = requests.get(f"{http}/hub/login", allow_redirects=False, timeout=30)
    assert redirect.status_code == 301 and redirect.headers["Location"] == "https://127.0.0.1/hub/login"

    session = requests.Session()
    session.verify = cert
    session.trust_env = False  # REQUESTS_CA_BUNDLE would take the place of our certificate
    session.get(f"{https}/hub/login", timeout=30)
    xsrf = demo_hub.xsrf(session)
    form = {"username": "alice", "password": demo_hub.password, "_xsrf": xsrf}
    response = session.post(f"{https}/hub/login?next=", data=form, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    # the hub saw https (X-Forwarded-Proto): its login cookie is Secure
    assert [c.secure for c in session.cookies if c.name == "jupyterhub-hub-login"] == [True]
    assert session.get(f"{https}/hub/home", timeout=30).status_code == 200

    token = demo_hub.user_token("alice")
    started = demo_hub.api("POST", "/users/alice/server", json={"user_options": {"profile": "cpu"}})
    assert started.status_code in (201, 202), started.text
    demo_hub.wait_for(lambda: (demo_hub.server("alice") or {}).get("ready"), timeout=60, what="alice's server")
    try:
        headers = {"Authorization": f"token {token}"}
        # a 3 MiB notebook saved through nginx (its default body limit is 1 MiB)
        notebook = {"type": "file", "format": "text", "content": "x" * (3 * 1024 * 1024)}
        saved = session.put(f"{https}/user/alice/api/contents/big.txt", json=notebook, headers=headers, timeout=60)
        assert saved.status_code in (200, 201), saved.text[:500]

        # and a WebSocket (what kernels and terminals use) is upgraded through it
        async def subscribe() -> bool:
            request = HTTPRequest(f"wss://127.0.0.1:{https.rsplit(':', 1)[1]}/user/alice/api/events/subscribe",
                                  headers=headers, ca_certs=cert)  # fmt: skip
            connection = await asyncio.wait_for(websocket_connect(request), timeout=30)
            connection.close()
            return True

        assert asyncio.run(subscribe())
    finally:
        demo_hub.stop_server("alice")
