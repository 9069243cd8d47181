"""Profile-aware spawners: the shared mixin (base.py), Kubernetes (kube.py) and local processes (local.py)."""
