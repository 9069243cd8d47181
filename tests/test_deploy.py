"""deploy/kubernetes: every Kubernetes object we ship validated against the Kubernetes
schemas, the chart's hub.extraConfig run against the example config, and the database
upgrade of the init container run twice at once against a real PostgreSQL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kube_schemas import validate
from sqlalchemy import inspect, text
from traitlets.config import Config

from twoi2c_hub.accounting.db import make_engine
from twoi2c_hub.paths import examples_dir
from twoi2c_hub.replicate.archive import known_revisions

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes"
VALUES = yaml.safe_load((DEPLOY / "values.yaml").read_text())
COMMUNITY = examples_dir() / "kube-community.yaml"


def env_list(extra_env: dict) -> list[dict]:
    """z2jh's hub.extraEnv (a map of name to value or valueFrom) as the container's env."""
    return [{"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in extra_env.items()]


def test_the_hub_pod_the_chart_makes_from_our_values_is_valid():
    hub = VALUES["hub"]
    image = f"{hub['image']['name']}:{hub['image']['tag']}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hub"},
        "spec": {
            "initContainers": hub["initContainers"],
            "containers": [
                {
                    "name": "hub",
                    "image": image,
                    "env": env_list(hub["extraEnv"]),
                    "volumeMounts": hub["extraVolumeMounts"],
                }  # fmt: skip
            ],
            "volumes": hub["extraVolumes"] + VALUES["singleuser"]["storage"]["extraVolumes"],
        },
    }
    validate(pod)
    # the init container sees the config where the hub does, and uses the same image
    assert hub["initContainers"][0]["volumeMounts"] == hub["extraVolumeMounts"]
    assert hub["initContainers"][0]["image"] == image
    validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "hub"},
              "spec": {"podSelector": {}, "ingress": hub["networkPolicy"]["ingress"]}})  # fmt: skip
    validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hub"},
              "spec": {"ports": [{"name": "hub", "port": 8081}] + hub["service"]["extraPorts"]}})  # fmt: skip


def test_the_secret_and_the_configmap_are_valid_and_every_secret_key_is_used():
    secret = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    validate(secret)
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twoi2c-community"},
                 "data": {"community.yaml": COMMUNITY.read_text()}}  # fmt: skip
    validate(configmap)
    assert VALUES["hub"]["extraVolumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]
    used = {v["valueFrom"]["secretKeyRef"]["key"] for v in VALUES["hub"]["extraEnv"].values()}
    assert used == set(secret["stringData"]), "a key of the Secret nobody reads, or one it lacks"


def test_the_charts_extra_config_configures_the_hub_from_the_mounted_config(tmp_path, monkeypatch):
    code = VALUES["hub"]["extraConfig"]["twoi2c"]
    mounted = tmp_path / "community.yaml"
    mounted.write_text(COMMUNITY.read_text())
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("PGPASSWORD", "pg-s3cret")
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)
    c = Config()
    exec(compile(code.replace("/etc/twoi2c/community.yaml", str(mounted)), "hub.extraConfig.twoi2c", "exec"), {"c": c})
    from twoi2c_hub.spawners.kube import ProfileKubeSpawner

    assert c.JupyterHub.spawner_class is ProfileKubeSpawner
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert {"usage", "cost", "idle-culler"} <= set(services)
    assert services["usage"]["url"] == "http://hub:10101" and services["cost"]["url"] == "http://hub:10102"
    # the database password reaches the services as it reaches the hub, and is nowhere else
    assert services["usage"]["environment"]["PGPASSWORD"] == "pg-s3cret"
    assert "pg-s3cret" not in services["usage"]["environment"]["TWOI2C_USAGE_DATABASE_URL"]
    ports = {p["port"] for rule in VALUES["hub"]["networkPolicy"]["ingress"] for p in rule["ports"]}
    assert ports == {10101, 10102}


def test_the_init_containers_database_upgrade_waits_for_another_pods(postgres_server, tmp_path):
    """Two hub pods starting at once: while one upgrades (holding the advisory lock), the
    other's init container waits, then finds the work done."""
    from twoi2c_hub.accounting.db import UPGRADE_LOCK

    url = postgres_server.new_database()
    config = yaml.safe_load(COMMUNITY.read_text())
    config["usage"]["database_url"] = url
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    command = VALUES["hub"]["initContainers"][0]["command"]
    assert command[:3] == ["twoi2c-hub", "db", "upgrade"]
    run = [str(Path(sys.executable).with_name(command[0])), *command[1:]]
    run[run.index("/etc/twoi2c/community.yaml")] = str(path)

    engine = make_engine(url)
    with engine.connect() as other_pod:
        other_pod.execute(text(f"SELECT pg_advisory_lock({UPGRADE_LOCK})"))
        waiting = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=5)  # it waits for the other pod's upgrade
        assert not inspect(other_pod).has_table("alembic_version")
        other_pod.execute(text(f"SELECT pg_advisory_unlock({UPGRADE_LOCK})"))
        other_pod.commit()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err[-2000:]
    with engine.connect() as connection:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert revision == known_revisions(url)[-1]
    again = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]  # and again: nothing to do


@pytest.mark.parametrize("line", ["FROM ${Z2JH_HUB_IMAGE}", '"/tmp/twoi2c-hub[postgresql]"'])
def test_the_hub_image_starts_from_the_charts_and_installs_the_package(line):
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert line in dockerfile
    assert "ARG Z2JH_HUB_IMAGE=quay.io/jupyterhub/k8s-hub:" in dockerfile


def z2jh_chart() -> tuple[dict, dict] | None:
    """The chart's default values and values schema: from TWOI2C_Z2JH_CHART (a chart
    directory), or a git mirror of zero-to-jupyterhub-k8s; neither is in a package
    registry, and the schema is not ours to commit."""
    directory = os.environ.get("TWOI2C_Z2JH_CHART")
    if directory and Path(directory, "values.schema.yaml").is_file():
        read = [Path(directory, name).read_text() for name in ("values.yaml", "values.schema.yaml")]
    else:
        mirror = Path("/work/.mirror/jupyterhub+zero-to-jupyterhub-k8s/repo")
        if not mirror.is_dir():
            return None
        read = [
            subprocess.run(["git", "-C", str(mirror), "show", f"HEAD:jupyterhub/{name}"], capture_output=True,
                           text=True, check=True).stdout
            for name in ("values.yaml", "values.schema.yaml")
        ]  # fmt: skip
    return yaml.safe_load(read[0]), yaml.safe_load(read[1])


def test_our_values_pass_the_charts_values_schema():
    import jsonschema

    from twoi2c_hub.replicate.helm import merge

    chart = z2jh_chart()
    if chart is None:
        pytest.skip("no zero-to-jupyterhub chart here: set TWOI2C_Z2JH_CHART to a checkout's jupyterhub/")
    defaults, schema = chart
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(merge([defaults, VALUES]))]
    assert errors == []
    # the check is real: a misspelt key is caught
    assert list(validator.iter_errors(merge([defaults, VALUES, {"hub": {"extraVolumez": []}}])))
