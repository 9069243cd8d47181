"""docs/deploy-kubernetes.md, followed where a test can without a cluster: the pinned
chart version is the one of the hub image, and our values pass that version's values
schema; every manifest we ship (PostgreSQL, the home-nfs volume, the ingress the chart
makes, a person's pod with its NFS home) passes the Kubernetes schemas; the files agree
(database URL and PostgreSQL, the claim the values mount, the issuer and the ingress); and
every server the example config can start lands on a node pool of gke-cluster.sh, the
GPU profile on the GPU pool only."""

import re
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
import yaml
from kube_schemas import KUBERNETES_VERSION, validate
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

from twoi2c_hub import catalog
from twoi2c_hub.config import load_config
from twoi2c_hub.paths import examples_dir
from twoi2c_hub.spawners.kube import ProfileKubeSpawner

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes"
GUIDE = Path(__file__).parent.parent / "docs" / "deploy-kubernetes.md"
VALUES = yaml.safe_load((DEPLOY / "values.yaml").read_text())
COMMUNITY = examples_dir() / "kube-community.yaml"
Z2JH_MIRROR = Path("/work/.mirror/jupyterhub+zero-to-jupyterhub-k8s/repo")
# what zero-to-jupyterhub gives every user pod (scheduling.userPods.tolerations)
CHART_USER_TOLERATIONS = [
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]


def manifests(name: str) -> dict[str, dict]:
    return {m["kind"]: m for m in yaml.safe_load_all((DEPLOY / name).read_text())}


def chart_version() -> str:
    versions = set(re.findall(r"jupyterhub/jupyterhub --version (\S+)", GUIDE.read_text()))
    assert len(versions) == 1, f"the guide pins more than one chart version: {versions}"
    return versions.pop()


def z2jh_at(version: str, path: str) -> str | None:
    if not Z2JH_MIRROR.is_dir():
        return None
    shown = subprocess.run(["git", "-C", str(Z2JH_MIRROR), "show", f"{version}:{path}"], capture_output=True, text=True)
    assert shown.returncode == 0, f"no {path} at {version} in zero-to-jupyterhub: {shown.stderr}"
    return shown.stdout


def test_the_guide_pins_one_chart_version_the_hub_image_and_the_values_name():
    version = chart_version()
    assert re.fullmatch(r"4\.\d+\.\d+", version)
    assert f"ARG Z2JH_HUB_IMAGE=quay.io/jupyterhub/k8s-hub:{version}\n" in (DEPLOY / "Dockerfile").read_text()
    assert f"jupyterhub/jupyterhub {version}" in (DEPLOY / "values.yaml").read_text()
    assert "helm repo add jupyterhub https://hub.jupyter.org/helm-chart/" in GUIDE.read_text()


def test_our_values_pass_the_pinned_charts_values_schema():
    import jsonschema

    from twoi2c_hub.replicate.helm import merge

    version = chart_version()
    chart = z2jh_at(version, "jupyterhub/Chart.yaml")
    if chart is None:
        pytest.skip("no zero-to-jupyterhub mirror here (its schema is in no package registry)")
    kube_versions = yaml.safe_load(chart)["kubeVersion"]
    assert kube_versions.startswith(">=") and _version(KUBERNETES_VERSION) >= _version(kube_versions[2:])
    defaults = yaml.safe_load(z2jh_at(version, "jupyterhub/values.yaml"))
    schema = yaml.safe_load(z2jh_at(version, "jupyterhub/values.schema.yaml"))
    errors = jsonschema.Draft7Validator(schema).iter_errors(merge([defaults, VALUES]))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []
    assert defaults["scheduling"]["userPods"]["tolerations"] == CHART_USER_TOLERATIONS


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("-")[0])[:3])


def test_the_ingress_the_chart_makes_is_valid_and_names_the_hubs_public_host():
    ingress = VALUES["ingress"]
    host = urlparse(VALUES["hub"]["config"]["JupyterHub"]["public_url"]).hostname
    assert ingress["hosts"] == [host] and ingress["tls"][0]["hosts"] == [host]
    assert VALUES["proxy"]["service"]["type"] == "ClusterIP"
    # as the chart's templates/ingress.yaml renders it
    backend = {"service": {"name": "proxy-public", "port": {"name": "http"}}}
    validate({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "jupyterhub", "annotations": ingress["annotations"]},
        "spec": {
            "ingressClassName": ingress["ingressClassName"],
            "rules": [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
                      for h in ingress["hosts"]],
            "tls": ingress["tls"],
        },
    })  # fmt: skip
    issuer = next(iter(manifests("cluster-issuer.yaml").values()))
    assert (issuer["apiVersion"], issuer["kind"]) == ("cert-manager.io/v1", "ClusterIssuer")
    assert ingress["annotations"]["cert-manager.io/cluster-issuer"] == issuer["metadata"]["name"]
    solver = issuer["spec"]["acme"]["solvers"][0]["http01"]["ingress"]
    assert solver["ingressClassName"] == ingress["ingressClassName"]


def test_the_in_cluster_postgresql_is_the_one_the_config_names():
    shipped = manifests("postgres.yaml")
    for manifest in shipped.values():
        validate(manifest)
    url = urlparse(load_config(COMMUNITY).usage.database_url)
    service, database = shipped["Service"], shipped["StatefulSet"]
    namespace = url.hostname.split(".")[1]
    assert url.hostname == f"{service['metadata']['name']}.{namespace}.svc"
    assert f"kubectl create namespace {namespace}" in GUIDE.read_text()
    assert f"--namespace {namespace}" in GUIDE.read_text()
    env = {e["name"]: e for e in database["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_USER"]["value"] == url.username and env["POSTGRES_DB"]["value"] == url.path.strip("/")
    secret = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    password = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password["name"] == secret["metadata"]["name"] and password["key"] in secret["stringData"]
    assert VALUES["hub"]["extraEnv"]["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == password
    assert service["spec"]["selector"] == database["spec"]["template"]["metadata"]["labels"]
    # the hub's pod (zero-to-jupyterhub's labels) may reach it
    allowed = shipped["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed == {"app": "jupyterhub", "component": "hub"}


def test_the_home_nfs_claim_is_the_one_the_values_mount_and_binds_its_volume():
    shipped = manifests("home-nfs.yaml")
    volume, claim = shipped["PersistentVolume"], shipped["PersistentVolumeClaim"]
    validate(volume)
    validate(claim)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in VALUES["singleuser"]["storage"]["extraVolumes"]]
    assert claims == [claim["metadata"]["name"]] == ["home-nfs"]
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert claim["spec"]["accessModes"] == volume["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == volume["spec"]["storageClassName"] == ""
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


# --- the node pools of gke-cluster.sh -----------------------------------------------------


def node_pools() -> dict[str, dict]:
    """Each pool of gke-cluster.sh: the labels and taints its nodes get (GKE's own too)."""
    script = (DEPLOY / "gke-cluster.sh").read_text().replace("\\\n", " ")
    pools = {}
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] == ["gcloud", "container", "clusters"] and words[3] == "create":
            name = "core"
        elif words[:4] == ["gcloud", "container", "node-pools", "create"]:
            name = words[4]
        else:
            continue
        flags = dict(zip(words, words[1:]))
        labels = {"node.kubernetes.io/instance-type": flags["--machine-type"]}
        labels.update(item.split("=", 1) for item in flags.get("--node-labels", "").split(",") if item)
        taints = [re.fullmatch(r"(.+)=(.+):(\w+)", t).groups() for t in flags.get("--node-taints", "").split(",") if t]
        if "--accelerator" in flags:
            accelerator = dict(item.split("=", 1) for item in flags["--accelerator"].split(","))
            labels["cloud.google.com/gke-accelerator"] = accelerator["type"]
            taints.append(("nvidia.com/gpu", "present", "NoSchedule"))
        pools[name] = {"labels": labels, "taints": taints}
    return pools


def tolerated(taint, tolerations) -> bool:
    key, value, effect = taint
    return any(
        t["key"] == key
        and (t.get("operator") == "Exists" or t.get("value") == value)
        and t.get("effect", effect) == effect
        for t in tolerations
    )


def lands_on(pod_spec: dict, pool: dict) -> bool:
    labels = pool["labels"]
    if any(labels.get(k) != v for k, v in pod_spec.get("nodeSelector", {}).items()):
        return False
    required = pod_spec.get("affinity", {}).get("nodeAffinity", {})
    terms = required.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
    if terms and not any(
        all(labels.get(e["key"]) in e["values"] for e in term["matchExpressions"] if e["operator"] == "In")
        for term in terms
    ):
        return False
    return all(tolerated(taint, pod_spec.get("tolerations", [])) for taint in pool["taints"])


def user_pod_spawner(user, groups) -> ProfileKubeSpawner:
    """ProfileKubeSpawner as zero-to-jupyterhub configures it from our values: the chart's
    tolerations and required node purpose, the home on NFS and its init container."""
    community = load_config(COMMUNITY)
    storage = VALUES["singleuser"]["storage"]
    c = Config()
    c.ProfileKubeSpawner.profile_list = community.profile_list()
    c.ProfileKubeSpawner.tolerations = CHART_USER_TOLERATIONS
    assert VALUES["scheduling"]["userPods"]["nodeAffinity"]["matchNodePurpose"] == "require"
    c.ProfileKubeSpawner.node_affinity_required = [
        {"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}
    ]
    c.ProfileKubeSpawner.volumes = storage["extraVolumes"]
    c.ProfileKubeSpawner.volume_mounts = storage["extraVolumeMounts"]
    c.ProfileKubeSpawner.init_containers = VALUES["singleuser"]["initContainers"]
    return ProfileKubeSpawner(_mock=True, user=user, config=c)


def selections():
    for profile in catalog.initialize(load_config(COMMUNITY).profile_list()):
        groups = profile.get("allowed_groups") or ["everyone"]
        options = profile.get("profile_options", {})
        for option_key, option in options.items():
            for choice_key, choice in option.get("choices", {}).items():
                picked = {"profile": profile["slug"], option_key: choice_key}
                yield picked, list(groups) + (choice.get("allowed_groups") or [])
        if not options:
            yield {"profile": profile["slug"]}, list(groups)


async def pod_of(selection, groups) -> dict:
    user = SimpleNamespace(name="alice", id=7, url="/user/alice/", admin=False,
                           groups=[SimpleNamespace(name=g) for g in groups])  # fmt: skip
    spawner = user_pod_spawner(user, groups)
    spawner.user_options = selection
    await spawner.load_user_options()
    async with ApiClient() as api:
        return {"apiVersion": "v1", "kind": "Pod", **api.sanitize_for_serialization(await spawner.get_pod_manifest())}


async def test_every_server_of_the_example_lands_on_a_node_pool_of_the_script():
    pools = node_pools()
    assert pools["core"]["labels"]["hub.jupyter.org/node-purpose"] == "core"
    used = set()
    for selection, groups in selections():
        pod = await pod_of(selection, groups)
        validate(pod)
        landing = {name for name, pool in pools.items() if lands_on(pod["spec"], pool)}
        assert landing, f"{selection}: no node pool takes it (node selector {pod['spec'].get('nodeSelector')})"
        assert "core" not in landing
        gpu = "nvidia.com/gpu" in pod["spec"]["containers"][0]["resources"].get("limits", {})
        gpu_pools = {name for name in landing if "cloud.google.com/gke-accelerator" in pools[name]["labels"]}
        assert (landing == gpu_pools) if gpu else not gpu_pools, f"{selection} lands on {landing}"
        used |= landing
    assert used == set(pools) - {"core"}, "a user pool no server of the example lands on"


async def test_a_persons_home_is_their_directory_of_the_nfs_volume_and_theirs():
    pod = await pod_of({"profile": "shared"}, ["everyone"])
    validate(pod)
    home = [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == "/home/jovyan"]
    assert home == [{"name": "home", "mountPath": "/home/jovyan", "subPath": "alice"}]
    (init,) = pod["spec"]["initContainers"]
    assert init["volumeMounts"] == home and init["command"] == ["chown", "1000:1000", "/home/jovyan"]
    assert VALUES["singleuser"]["storage"]["type"] == "none"  # not a disk per person as well


def test_the_postgres_pod_runs_on_the_core_pool():
    spec = manifests("postgres.yaml")["StatefulSet"]["spec"]["template"]["spec"]
    assert [name for name, pool in node_pools().items() if lands_on(spec, pool)] == ["core"]


def test_the_cluster_script_is_valid_shell():
    result = subprocess.run(["sh", "-n", str(DEPLOY / "gke-cluster.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
