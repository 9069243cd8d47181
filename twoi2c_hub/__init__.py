"""twoi2c_hub: a community's JupyterHub from one config file.

In jupyterhub_config.py::

    from twoi2c_hub import configure
    configure(c, "/etc/jupyterhub/community.yaml")
"""

__version__ = "0.1.0"


def configure(c, path):
    """Wire the community config file at `path` into the JupyterHub config `c`."""
    # the wiring brings in the spawners, the authenticators and JupyterHub: imported when
    # called, so that the command line (check-config, export, ...) starts without them
    from .hub import configure as _configure

    return _configure(c, path)
