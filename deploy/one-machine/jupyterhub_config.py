# /etc/twoi2c-hub/jupyterhub_config.py: the hub on this machine. The community (who logs
# in, profiles, culling, accounting, prices) is in community.yaml; this file says where
# things are on this machine. Walk-through: docs/one-machine.md.
# ruff: noqa: F821 (JupyterHub runs this file with `c` defined)
import sys

from twoi2c_hub import configure

configure(c, "/etc/twoi2c-hub/community.yaml")

# The proxy listens on loopback only: nginx (or Caddy) in front of it terminates TLS
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
# Where people reach the hub: its cookies are Secure (behind the proxy the hub itself sees
# plain http), and links it makes point there
c.JupyterHub.public_url = "https://hub.example.org/"
# The Python configurable-http-proxy, started and stopped by the hub (no Node.js needed)
c.ConfigurableHTTPProxy.command = [sys.executable, "-m", "twoi2c_hub.proxy"]
c.ConfigurableHTTPProxy.pid_file = "/var/lib/twoi2c-hub/proxy.pid"
# The hub's own state: people, groups, tokens, servers (back up with twoi2c-hub export --hub-db)
c.JupyterHub.db_url = "sqlite:////var/lib/twoi2c-hub/jupyterhub.sqlite"
# The cookie secret comes from $JPY_COOKIE_SECRET (/etc/twoi2c-hub/env); without it the
# hub makes this file (mode 0600) at its first start
c.JupyterHub.cookie_secret_file = "/var/lib/twoi2c-hub/jupyterhub_cookie_secret"
