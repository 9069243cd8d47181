"""The community config file and `configure(c, path)` for jupyterhub_config.py."""

from .loading import ConfigError, load_config, parse_config
from .models import CommunityConfig

__all__ = ["CommunityConfig", "ConfigError", "configure", "load_config", "parse_config"]


def __getattr__(name: str):
    # configure() brings in the spawners and JupyterHub: imported when asked for, so that
    # the command line (check-config, export, ...) starts without them
    if name == "configure":
        from .wiring import configure

        return configure
    raise AttributeError(name)
