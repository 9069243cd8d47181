"""The community config file and `configure(c, path)` for jupyterhub_config.py."""

from .loading import ConfigError, load_config, parse_config
from .models import CommunityConfig
from .wiring import configure

__all__ = ["CommunityConfig", "ConfigError", "configure", "load_config", "parse_config"]
