"""ProfileLocalSpawner: the same profiles, form and refusals, as local processes.

What a profile asks for is applied as far as one machine allows: environment variables,
a memory limit (the address-space limit of the server process, RLIMIT_AS), a CPU limit
(the server is pinned to that many cores), and an image choice mapped to a named Python
environment. An image without a mapping is shown on the form as not available on this
hub, and the server runs the default environment. A profile or choice that asks for a GPU
is shown disabled and refused at start (unless `gives_gpus`): nothing here can give one,
and its price would be charged for a GPU the server never had.
"""

from __future__ import annotations

import math
import os
import pwd
import resource
import sys

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Bool, Dict, List, Unicode, Union, default

from .. import catalog
from .base import ProfileSpawnerMixin, escaped_username


class ProfileLocalSpawner(ProfileSpawnerMixin, LocalProcessSpawner):
    """LocalProcessSpawner with group-aware server profiles."""

    profile_list = Union(
        [List(Dict()), Dict()],
        default_value=[],
        config=True,
        help="""Server profiles in KubeSpawner's profile_list format, with
        `allowed_groups` on profiles, choices and unlisted choices. Usually set by
        `twoi2c_hub.configure` from the community config.""",
    )

    images = Dict(
        Unicode(),
        config=True,
        help="""Image name -> Python executable of an environment that has
        jupyterhub and jupyter-server installed ("hub": the hub's own Python). A profile
        choosing a listed image runs that Python; other images run `python`.""",
    )

    python = Unicode(
        config=True,
        help="Python executable for servers whose image has no entry in `images` (default: the hub's).",
    )

    @default("python")
    def _default_python(self):
        return sys.executable

    system_users = Bool(
        True,
        config=True,
        help="""Run each server as the Unix user of the same name (LocalProcessSpawner's
        behaviour). False runs every server as the hub's user with HOME under
        `home_dir_template`, for demos and tests: it gives no isolation between users.""",
    )

    server_user = Unicode(
        "",
        config=True,
        help="""When system_users is False and the hub runs as root: the one unprivileged
        Unix user every server runs as (homes under `home_dir_template` are made and owned
        by it). Servers then cannot read the hub's or the services' secrets (their
        /proc/<pid>/environ); they can read each other's homes. Empty: servers run as the
        hub's user.""",
    )

    home_dir_template = Unicode(
        "/tmp/{username}",
        config=True,
        help="HOME of each server when system_users is False; {username} is replaced by the escaped username.",
    )

    apply_memory_limit = Bool(
        True,
        config=True,
        help="Limit the server process's address space to the profile's mem_limit.",
    )

    apply_cpu_limit = Bool(
        True,
        config=True,
        help="Pin the server process to ceil(cpu_limit) cores of this machine.",
    )

    gives_gpus = Bool(
        False,
        config=True,
        help="""The servers of this machine can use its GPUs (e.g. a lab's workstation: every
        server sees every GPU, nothing shares them out), so profiles asking for a GPU may
        start. False: they are shown disabled, with the reason, and refused at start.""",
    )

    _configured_cmd: list[str] | None = None

    @default("cmd")
    def _default_cmd(self):
        return [self.python, "-m", "jupyterhub.singleuser"]

    async def get_catalog(self) -> list[dict]:
        value = self.profile_list
        if isinstance(value, dict):
            value = [value[k] for k in sorted(value)]
        return value

    # --- applying a profile -------------------------------------------------------------

    def python_for_image(self, image: str | None) -> str | None:
        python = self.images.get(image) if image else None
        return self.python if python == "hub" else python

    def cannot_give(self, override: dict) -> str | None:
        if catalog.gpu_count(override) and not self.gives_gpus:
            return "a GPU"
        return None

    def profile_form_notes(self, profile: dict) -> dict[str, str]:
        notes = {}

        def note(override) -> str | None:
            image = override.get("image")
            if image and not self.python_for_image(image):
                return "Not available on this hub: this image (the default environment runs instead)."
            return None

        if text := note(profile.get("kubespawner_override") or {}):
            notes[""] = text
        for option_key, option in profile.get("profile_options", {}).items():
            for choice_key, choice in option.get("choices", {}).items():
                if text := note(choice.get("kubespawner_override") or {}):
                    notes[f"{option_key}/{choice_key}"] = text
        return notes

    async def start(self):
        resolved = await self.resolve_selection(self.user_options)
        await self.wait_in_line()
        try:
            self.mem_limit = resolved.mem_limit
            self.mem_guarantee = resolved.mem_guarantee
            self.cpu_limit = resolved.cpu_limit
            self.cpu_guarantee = resolved.cpu_guarantee
            if self._configured_cmd is None:
                self._configured_cmd = list(self.cmd)
            python = self.python_for_image(resolved.image)
            self.cmd = [python, "-m", "jupyterhub.singleuser"] if python else list(self._configured_cmd)
        except BaseException:
            self.leave_line()
            raise
        return await super().start()  # it leaves the line when the server answers

    def get_env(self):
        env = super().get_env()
        env.update(self.community_environment())
        if self.resolved_server is not None:
            env.update(self.resolved_server.environment)
            env["TWOI2C_PROFILE"] = self.resolved_server.profile_slug or ""
            if self.resolved_server.image:
                env["TWOI2C_IMAGE"] = self.resolved_server.image
        return env

    def get_args(self):
        args = super().get_args()
        if not self.system_users and not self.server_user and os.geteuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")
        return args

    def make_preexec_fn(self, name):
        if self.system_users:
            become_user = super().make_preexec_fn(name)
        else:
            home = self.home_dir
            drop_privileges = set_user_setuid(self.server_user, chdir=False) if self.server_user else None
            if drop_privileges:
                # made here, in the hub, so that a failure is logged and not lost in a fork
                account = pwd.getpwnam(self.server_user)
                os.makedirs(home, mode=0o700, exist_ok=True)
                os.chown(home, account.pw_uid, account.pw_gid)

            def become_user():
                if drop_privileges:
                    drop_privileges()
                os.makedirs(home, exist_ok=True)
                os.chdir(home)

        mem_limit = self.mem_limit if self.apply_memory_limit else None
        cores = None
        if self.apply_cpu_limit and self.cpu_limit:
            available = sorted(os.sched_getaffinity(0))
            cores = available[: max(1, min(len(available), math.ceil(self.cpu_limit)))]

        def preexec():
            if mem_limit:
                resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
            if cores:
                os.sched_setaffinity(0, cores)
            become_user()

        return preexec

    @property
    def home_dir(self) -> str:
        return self.home_dir_template.format(username=escaped_username(self.user.name))

    def user_env(self, env):
        if self.system_users:
            return super().user_env(env)
        env["HOME"] = self.home_dir
        env["USER"] = self.user.name
        return env
