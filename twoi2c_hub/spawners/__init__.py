"""Profile-aware spawners: the catalog (profiles.py), Kubernetes (kube.py) and local (local.py)."""
