"""An unprivileged account for local servers: a system user and a Python it may run.

A hub run as root (the demo on a fresh machine) must run people's servers neither as
root nor as its own user: a notebook could then read the hub's and the services' secrets
from `/proc/<pid>/environ`. `ensure()` makes a system user (`twoi2c-server`) and a
virtual environment holding the hub's own versions of jupyterhub, jupyter-server,
jupyterlab and ipykernel in a directory every user can read (`/opt/twoi2c-hub/server-env`),
once per machine and set of versions; several runs at once build it once (a lock file).

Every server then runs as that one user: servers cannot read the hub's secrets, but can
read each other's homes. Per-person Unix users (`spawner.local.system_users`) separate
people from each other too.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

DEFAULT_USER = "twoi2c-server"
DEFAULT_PATH = Path("/opt/twoi2c-hub/server-env")
PACKAGES = ("jupyterhub", "jupyter-server", "jupyterlab", "ipykernel")
STAMP = ".twoi2c-requirements"


class SetupError(Exception):
    """The account or its environment cannot be made here; the message says why."""


class ServerAccount(NamedTuple):
    user: str
    python: str


def requirements() -> list[str]:
    """The hub's own versions of what a server needs, pinned."""
    pinned = []
    for name in PACKAGES:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


def usable_by_others(path: str | os.PathLike) -> bool:
    """Whether a user other than the owner may reach and run `path` (by the mode bits:
    every directory above it searchable, the file itself readable and executable)."""
    resolved = Path(path).resolve()
    try:
        if resolved.stat().st_mode & (stat.S_IROTH | stat.S_IXOTH) != (stat.S_IROTH | stat.S_IXOTH):
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in resolved.parents)
    except OSError:
        return False


def base_python(explicit: str | None = None) -> str:
    """A Python other users can run, to make the environment from."""
    candidates = [explicit] if explicit else ["/usr/bin/python3", sys._base_executable, shutil.which("python3")]
    for candidate in filter(None, candidates):
        if usable_by_others(candidate):
            return candidate
    raise SetupError(
        f"No Python that other users may run (tried {', '.join(filter(None, candidates))}); "
        "install Debian's python3 and python3-venv, or name one with --python."
    )


def ensure_user(name: str = DEFAULT_USER) -> pwd.struct_passwd:
    """The system user `name`, made (without a login shell or home) if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
        + ["--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    try:  # another run may have made it at the same moment
        return pwd.getpwnam(name)
    except KeyError:
        raise SetupError(f"Could not create the system user {name!r}: {result.stderr.strip()}") from None


def ensure_environment(path: Path = DEFAULT_PATH, python: str | None = None) -> str:
    """The environment's Python, building the environment first if its versions differ."""
    wanted = "\n".join(requirements()) + "\n"
    stamp = path / STAMP

    def current() -> bool:
        try:
            return stamp.read_text() == wanted
        except OSError:
            return False

    if not current():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with open(path.parent / f".{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not current():
                _build(path, base_python(python), wanted)
    return str(path / "bin" / "python")


def _build(path: Path, python: str, wanted: str) -> None:
    print(f"Making the servers' Python environment in {path} (once) ...", file=sys.stderr, flush=True)
    shutil.rmtree(path, ignore_errors=True)
    steps = [
        [python, "-m", "venv", str(path)],
        [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + wanted.split(),
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, umask=0o022)
        if result.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            raise SetupError(f"{' '.join(step)} failed:\n{result.stderr.strip()[-2000:]}")
    (path / STAMP).write_text(wanted)
    os.chmod(path / STAMP, 0o644)


def ensure(user: str = DEFAULT_USER, path: Path = DEFAULT_PATH, python: str | None = None) -> ServerAccount:
    """The account servers run as, made if needed (as root only)."""
    if os.geteuid() != 0:
        raise SetupError("Only root can make a system user or run servers as another user.")
    ensure_user(user)
    return ServerAccount(user, ensure_environment(Path(path), python))


def reachable(path: str | os.PathLike, user: str) -> bool:
    """Whether `user` (not root, not the owner) may enter every directory down to `path`."""
    account = pwd.getpwnam(user)
    resolved = Path(path).resolve()
    for directory in [*reversed(resolved.parents), resolved]:
        info = directory.stat()
        bit = stat.S_IXUSR if info.st_uid == account.pw_uid else stat.S_IXGRP
        if info.st_uid != account.pw_uid and info.st_gid != account.pw_gid:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True
