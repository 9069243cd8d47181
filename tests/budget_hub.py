"""A hub of the demo community with one budget that denies students past 10 USD a week,
its services answering: the hub the abuse and fuzzing tests attack."""

import requests
import yaml

from twoi2c_hub.paths import demo_config


def start(hub_factory, work, name: str):
    """The HubClient of a new such hub; its config and databases under `work`."""
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"database_url": f"sqlite:///{work / 'usage.sqlite'}"}
    config["budgets"] = {
        "budgets": [{"name": "students-weekly", "applies_to": "group", "names": ["students"], "limit": 10,
                     "period": "7d", "thresholds": [{"at": 100, "action": "deny"}]}],
    }  # fmt: skip
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    client = hub_factory(path, name)
    for service in ("usage", "cost"):
        client.wait_for(
            lambda s=service: requests.get(f"{client.url}/services/{s}/health", timeout=10).ok, what=service
        )
    return client
