import os
from pathlib import Path

# kubernetes_asyncio reads KUBECONFIG when it is imported: set it before anything does
os.environ["KUBECONFIG"] = str(Path(__file__).parent / "data" / "fake-kubeconfig.yaml")
