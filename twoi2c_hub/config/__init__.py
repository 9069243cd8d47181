"""The community config file: its models (pydantic) and its loading, with every problem
and its path (what `twoi2c-hub check-config` prints). Wiring it into JupyterHub is
`twoi2c_hub.configure` (the `hub` package)."""

from .loading import ConfigError, load_config, parse_config
from .models import CommunityConfig

__all__ = ["CommunityConfig", "ConfigError", "load_config", "parse_config"]
