# jupyterhub_config.py for a community hub on one machine.
#
#   pip install twoi2c-hub jupyterlab
#   twoi2c-hub check-config community.yaml
#   jupyterhub -f jupyterhub_config.py
#
# Everything about the community (who logs in, profiles, culling, usage accounting) is in
# the community config file; this file only says where it is, plus the settings of this
# machine.
from twoi2c_hub import configure

configure(c, "community.yaml")  # e.g. a copy of demo-community.yaml

c.JupyterHub.bind_url = "http://127.0.0.1:8000"
# ProfileLocalSpawner runs each server as the Unix user of the same name; set this to
# False only for demos, where every server runs as the hub's own user:
# c.ProfileLocalSpawner.system_users = False
# The Python configurable-http-proxy with room for many requests at once (tornado's
# default is 10 in flight, so a few slow reports would hold up logins):
# import sys
# c.ConfigurableHTTPProxy.command = [sys.executable, "-m", "twoi2c_hub.proxy"]
