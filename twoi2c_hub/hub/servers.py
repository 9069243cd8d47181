"""The spawner: ProfileKubeSpawner or ProfileLocalSpawner, its profiles, interfaces,
environment and limits, and the spawn form (ours or jupyterhub-fancy-profiles)."""

from __future__ import annotations

from traitlets.config import Config

from ..config import CommunityConfig
from .environment import SettingError


def spawner(c: Config, config: CommunityConfig) -> None:
    """The spawner class and its settings from the config's `spawner:` and `profiles:`."""
    settings = config.spawner
    if settings.kind == "kube":
        from ..spawners.kube import ProfileKubeSpawner as cls

        section = c.ProfileKubeSpawner
        if settings.admin_volume_mounts:
            section.admin_volume_mounts = settings.admin_volume_mounts
    else:
        from ..spawners.local import ProfileLocalSpawner as cls

        section = c.ProfileLocalSpawner
        local = settings.local
        section.images = local.images
        if local.python:
            section.python = local.python
        section.apply_memory_limit = local.apply_memory_limit
        section.apply_cpu_limit = local.apply_cpu_limit
        section.system_users = local.system_users
        if local.server_user:
            section.server_user = local.server_user
        section.home_dir_template = local.home_dir_template
    c.JupyterHub.spawner_class = cls
    section.profile_list = config.profile_list()
    section.user_environment = settings.user_environment
    section.admin_environment = settings.admin_environment
    section.start_timeout = settings.start_timeout
    if settings.oauth_client_allowed_scopes:
        section.oauth_client_allowed_scopes = list(settings.oauth_client_allowed_scopes)
    if settings.default_url:
        section.default_url = settings.default_url
    section.interfaces = settings.interface_list()
    section.spawn_form = settings.form
    section.concurrent_starts = settings.concurrent_starts
    c.JupyterHub.concurrent_spawn_limit = settings.concurrent_spawn_limit
    c.JupyterHub.active_server_limit = settings.active_server_limit
    if settings.form == "fancy-profiles":
        fancy_profiles(c)


def fancy_profiles(c: Config) -> None:
    """Serve jupyterhub-fancy-profiles' script and styles at {hub base URL}fancy-profiles/static/."""
    try:
        import jupyterhub_fancy_profiles
    except ImportError:
        raise SettingError(
            "spawner.form is fancy-profiles, but jupyterhub-fancy-profiles is not installed: "
            "pip install 'twoi2c-hub[fancy-profiles]'"
        ) from None
    from ..spawners.form import FANCY_PROFILES_STATIC

    handler = jupyterhub_fancy_profiles.STATIC_HANDLER_TUPLE
    route = "/" + FANCY_PROFILES_STATIC + "(.*)"
    c.JupyterHub.extra_handlers.append((route, *handler[1:]))
