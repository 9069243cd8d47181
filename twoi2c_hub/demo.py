"""`twoi2c-hub demo`: the demo hub on 127.0.0.1, its servers run as the unprivileged
server account when started as root, until Ctrl-C."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

from . import server_account
from .config.loading import ConfigError, load_config
from .paths import examples_dir


def demo_homes(data_dir: Path) -> Path:
    """Where the demo's server user keeps its homes: a place it can reach (/tmp), the same
    for the same data dir, so that a demo restarted with --data-dir finds them again."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"twoi2c-demo-homes-{digest}"


def demo(args) -> int:
    from .localhub import LocalHub

    password = args.password or os.environ.get("TWOI2C_DEMO_PASSWORD") or secrets.token_urlsafe(9)
    config_path = Path(args.config) if args.config else examples_dir() / "demo-community.yaml"
    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="twoi2c-demo-"))
    account = None
    if os.geteuid() == 0:  # never run people's servers as root, nor as the hub's user
        try:
            account = server_account.ensure()
        except server_account.SetupError as e:
            print(str(e), file=sys.stderr)
            return 1
    else:
        print("Not run as root: every server runs as you, and can read the hub's secrets.", file=sys.stderr)
    environment = {}
    if not os.environ.get("JUPYTERHUB_CRYPT_KEY"):  # OAuth providers keep tokens in auth state
        environment["JUPYTERHUB_CRYPT_KEY"] = _demo_crypt_key(data_dir)
    workshop = _workshop_password_env(config)
    if workshop and not os.environ.get(workshop):  # the demo's password opens the workshop
        environment[workshop] = password
    hub = LocalHub(
        config_path,
        data_dir,
        port=args.port,
        password=password,
        environment=environment,
        server_account=account,
        homes_dir=args.homes_dir or (demo_homes(data_dir) if account else None),
    )
    print(f"Starting {config.hub.name} (demo, log: {hub.log_file}) ...", flush=True)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    # Ctrl-C stops the demo even when started from a shell that ignores it (a background
    # job of a script inherits SIGINT ignored, and Python then leaves it ignored)
    signal.signal(signal.SIGINT, interrupted)
    try:
        hub.start()
        print(
            f"\n  {config.hub.name} is running at {hub.url}/\n{how_to_log_in(config, password)}\n"
            "  Press Ctrl-C to stop.\n",
            flush=True,
        )
        hub.process.wait()
        print(f"JupyterHub exited with status {hub.process.returncode}; see {hub.log_file}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the demo hub ...", flush=True)
        return 0
    except RuntimeError as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
        hub.stop()
        print("Stopped.", flush=True)


def _demo_crypt_key(data_dir: Path) -> str:
    """The key for auth state: kept in the data dir, so that a demo restarted with the same
    --data-dir reads what it stored."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / "crypt_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _workshop_password_env(config) -> str | None:
    if config.auth.provider != "workshop":
        return None
    return config.auth.workshop.password_env if config.auth.workshop else "TWOI2C_WORKSHOP_PASSWORD"


def how_to_log_in(config, password: str) -> str:
    """The lines the demo prints under its URL: who may log in, and how."""
    auth = config.auth
    if auth.provider == "demo":
        users = ", ".join(
            f"{name} ({'hub admin' if u.admin else ', '.join(u.groups) or 'no group'})"
            for name, u in auth.users.items()
        )
        return f"  Log in as {users}\n  Password: {password}\n"
    if auth.provider == "workshop":
        variable = _workshop_password_env(config)
        shown = password if os.environ.get(variable) in (None, "", password) else f"the one in ${variable}"
        return f"  Log in with any name and the workshop password.\n  Password: {shown}\n"
    return f"  Log in through the {auth.provider} provider: the login page has its button.\n"
