"""`twoi2c-hub convert` on every layout hubs are deployed in (z2jh itself, a chart wrapping
it, 2i2c's basehub and daskhub, a chart wrapping daskhub, several layered files, Helm's
nulls), and what people's servers get: KubeSpawner builds the same pod from the original
values and from the converted hub. Every values file here is written for this test, in the
shapes public deployments use."""

import copy
import json
import textwrap
from types import SimpleNamespace

import pytest
import yaml
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import Config

from twoi2c_hub.cli import main as cli
from twoi2c_hub.config import parse_config
from twoi2c_hub.hub import servers
from twoi2c_hub.replicate.convert import convert
from twoi2c_hub.replicate.helm import at, helm_values, merge
from twoi2c_hub.spawners.kube import ProfileKubeSpawner

# the server part of a hub's values, as 2i2c's and universities' hubs write it
HUB = yaml.safe_load(
    textwrap.dedent(
        """
        custom:
          homepage:
            templateVars:
              org: {name: Example Lab, url: "https://lab.example.org", logo_url: "https://lab.example.org/logo.svg"}
              funded_by: {name: Example Foundation, url: "https://example.org"}
        hub:
          config:
            Spawner:
              oauth_client_allowed_scopes: ["access:services"]
            KubeSpawner:
              working_dir: /home/jovyan
        singleuser:
          image: {name: quay.io/example/notebook}
          memory: {guarantee: 2G, limit: 4G}
          cpu: {guarantee: 0.5, limit: 2}
          defaultUrl: /lab
          nodeSelector: {example.org/hub-name: research, node.kubernetes.io/instance-type: r5.xlarge}
          extraTolerations:
            - {key: example.org/dedicated, operator: Equal, value: user, effect: NoSchedule}
          extraEnv:
            SCRATCH_BUCKET: s3://example-scratch/$(JUPYTERHUB_USER)
            PERSISTENT_BUCKET: s3://example-persistent/$(JUPYTERHUB_USER)
            HOME_LINK: "/home/{username}"
            API_KEY: {valueFrom: {secretKeyRef: {name: keys, key: api}}}
            CONDA_DIR: /opt/conda
          extraFiles:
            kernel-config:
              mountPath: /usr/local/etc/ipython/ipython_kernel_config.json
              data: {InlineBackend: {figure_formats: [svg]}}
            check-script: {mountPath: /mnt/check/run, mode: 0755, stringData: "#!/bin/sh\\ntrue\\n"}
          storage:
            extraVolumes: [{name: shared, persistentVolumeClaim: {claimName: shared}}]
            extraVolumeMounts: [{name: shared, mountPath: /home/jovyan/shared, readOnly: true}]
          profileList:
            - display_name: Small
              slug: small
              default: true
            - display_name: GPU
              slug: gpu
              kubespawner_override:
                node_selector: {node.kubernetes.io/instance-type: g4dn.xlarge}
                extra_resource_limits: {nvidia.com/gpu: "1"}
                environment: {CONDA_DIR: /srv/conda}
                tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
            - display_name: Large
              slug: large
              kubespawner_override: {node_selector: {example.org/hub-name: null}}
              profile_options:
                memory:
                  display_name: Memory
                  choices:
                    m16: {display_name: 16 GB, kubespawner_override: {mem_guarantee: 16G, mem_limit: 16G}}
                    m32:
                      display_name: 32 GB
                      kubespawner_override:
                        mem_limit: 32G
                        node_selector: {node.kubernetes.io/instance-type: r5.2xlarge}
        cull: {timeout: 1800}
        """
    )
)
# the image's tag comes in a layer of its own (a deployer's --set-string)
TAG = {"singleuser": {"image": {"tag": "2025.01.06"}}}


def placed(path: str, values: dict) -> dict:
    for key in reversed(path.split(".") if path else []):
        values = {key: values}
    return values


def notes_by_path(notes) -> dict[str, str]:
    return {note.path: note.what for note in notes}


# --- layouts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["", "jupyterhub", "basehub.jupyterhub", "daskhub.jupyterhub"], ids=["z2jh", "wrapped", "daskhub", "pangeo"]
)
def test_every_layout_converts_to_the_same_config(path):
    plain, _ = convert([HUB, TAG], "Example Lab")
    layers = [placed(path, HUB), placed(path, TAG)]
    if path:  # the wrapping charts' own values, beside the hub's
        layers.append(placed(path.rpartition(".")[0], {"nfs": {"enabled": True}}) if "." in path else {})
        layers.append({"dask-gateway": {"enabled": True}})
    config, notes = convert(layers, "Example Lab")
    assert config == plain
    assert config["profiles"][0]["kubespawner_override"]["image"] == "quay.io/example/notebook:2025.01.06"
    assert config["hub"]["funders"] == [{"name": "Example Foundation", "url": "https://example.org"}]
    assert config["culling"] == {"enabled": True, "timeout": 1800, "every": 600}  # z2jh checks every 600 s
    listed = notes_by_path(notes)
    prefix = f"{path}." if path else ""
    assert f"{prefix}singleuser.extraFiles" in listed and f"{prefix}hub.config.KubeSpawner.working_dir" in listed
    if path:
        assert "another chart's values" in listed["dask-gateway"]
    if "." in path:
        assert "another chart's values" in listed[f"{path.split('.')[0]}.nfs"]
    parse_config(yaml.safe_dump(config))  # passes check-config


def test_helm_layering_a_later_file_sets_again_what_an_earlier_one_nulled():
    chart = {"jupyterhub": {"singleuser": {"memory": {"guarantee": "512M"}, "nodeSelector": {"pool": "user"},
                                           "defaultUrl": "/tree"}}}  # fmt: skip
    common = {"jupyterhub": {"singleuser": {"memory": None, "nodeSelector": None, "defaultUrl": None}}}
    prod = {"jupyterhub": {"singleuser": {"memory": {"limit": "2G"}, "defaultUrl": "/lab"}}}
    values = helm_values([chart, common, prod], chart_layers=1)["jupyterhub"]["singleuser"]
    # memory set again by prod: merged with the chart's default, as Helm does; the
    # nodeSelector's null stands: the chart's default is gone
    assert values == {"memory": {"guarantee": "512M", "limit": "2G"}, "defaultUrl": "/lab"}
    assert merge([chart, common, prod])["jupyterhub"]["singleuser"]["memory"] == {"limit": "2G"}  # not Helm

    config, _ = convert([chart, common, prod], "Lab", chart_layers=1)
    assert config["profiles"] == [
        {"display_name": "Default server", "slug": "default",
         "kubespawner_override": {"mem_guarantee": "512M", "mem_limit": "2G"}}
    ]  # fmt: skip
    assert config["spawner"]["default_url"] == "/lab"


def test_the_chart_values_from_the_command_line(tmp_path, capsys):
    (tmp_path / "chart.yaml").write_text("jupyterhub:\n  singleuser:\n    memory: {guarantee: 512M}\n")
    (tmp_path / "common.yaml").write_text("jupyterhub:\n  singleuser:\n    memory: null\n")
    (tmp_path / "prod.yaml").write_text("jupyterhub:\n  singleuser:\n    memory: {limit: 2G}\n")
    out = tmp_path / "community.yaml"
    files = [str(tmp_path / f) for f in ("common.yaml", "prod.yaml")]
    assert cli(["convert", "--chart-values", str(tmp_path / "chart.yaml"), *files, "--out", str(out)]) == 0
    override = yaml.safe_load(out.read_text())["profiles"][0]["kubespawner_override"]
    assert override == {"mem_guarantee": "512M", "mem_limit": "2G"}


@pytest.mark.parametrize(
    "text",
    [
        "hub:\n  image:\n    tag: {{ .Values.hubTag }}\n",
        "{{- if .Values.enabled }}\nsingleuser:\n  defaultUrl: /lab\n{{- end }}\n",
        'singleuser:\n  image:\n    name: "{{ .Values.image }}"\n',
        "{% if provider == 'aws' %}\nnfs: {serverIP: 10.0.0.1}\n{% endif %}\n",
        "custom:\n  homepage:\n    templateVars:\n      org:\n        name: {{ cluster_name }}\n",
    ],
    ids=["helm", "helm-block", "helm-quoted", "jinja-block", "jinja-value"],
)
def test_a_templated_file_is_refused_in_one_line(tmp_path, capsys, text):
    (tmp_path / "hub.values.yaml").write_text(text)
    assert cli(["convert", str(tmp_path / "hub.values.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(str(tmp_path / "hub.values.yaml")) and "a template" in err and "render it first" in err


def test_braces_that_are_not_a_template_are_read(tmp_path, capsys):
    (tmp_path / "values.yaml").write_text(
        textwrap.dedent(
            """
            hub:
              extraConfig:
                escape: |
                  settings = "{{ x }}".format()
            singleuser:
              extraEnv:
                DASK_IMAGE: '{{JUPYTER_IMAGE_SPEC}}'
            """
        )
    )
    (tmp_path / "broken.yaml").write_text("singleuser: [a\n")
    assert cli(["convert", str(tmp_path / "values.yaml")]) == 0
    capsys.readouterr()
    assert cli(["convert", str(tmp_path / "broken.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{tmp_path / 'broken.yaml'}: not YAML") and len(err.splitlines()) == 1


# --- hub.config ---------------------------------------------------------------------------


def test_hub_config_spawner_sections_outrank_singleuser_as_on_the_original():
    values = {
        "singleuser": {"image": {"name": "quay.io/a/old", "tag": "1"}, "defaultUrl": "/tree",
                       "memory": {"limit": "4G"}},
        "hub": {"config": {
            "KubeSpawner": {"image": "quay.io/a/new:2", "cpu_limit": 2},
            "Spawner": {"default_url": "/lab", "mem_limit": "1G", "oauth_client_allowed_scopes": ["access:services"]},
        }},
    }  # fmt: skip
    config, notes = convert([values])
    assert config["profiles"][0]["kubespawner_override"] == {
        "image": "quay.io/a/new:2",  # hub.config.KubeSpawner replaces what z2jh set from singleuser
        "mem_guarantee": "1G",
        "mem_limit": "4G",  # c.KubeSpawner (from singleuser) outranks c.Spawner
        "cpu_limit": 2,
    }
    assert config["spawner"]["default_url"] == "/lab"  # both on c.Spawner: hub.config is loaded last
    assert config["spawner"]["oauth_client_allowed_scopes"] == ["access:services"]
    listed = notes_by_path(notes)
    assert "outranked by hub.config.Spawner.default_url" in listed["singleuser.defaultUrl"]
    assert "outranked by singleuser.memory.limit" in listed["hub.config.Spawner.mem_limit"]
    assert "outranked" in listed["singleuser.image.name"]

    c = Config()
    servers.spawner(c, parse_config(yaml.safe_dump(config)))
    assert c.ProfileKubeSpawner.oauth_client_allowed_scopes == ["access:services"]


def test_originals_that_would_not_work_are_said_so():
    values = {
        "hub": {"config": {
            "GitHubOAuthenticator": {"client_id": "x", "Authenticator": {"admin_users": ["ops"]}},
            "loadRoles": {"staff": {"scopes": ["admin-ui"]}},
        }},
        "singleuser": {"extraEnv": {
            "DASK_GATEWAY__IMAGE": "{JUPYTER_IMAGE_SPEC}",
            "DASHBOARD": "/user/{JUPYTERHUB_USER}/proxy/{port}/status",
            "FINE": "$(JUPYTERHUB_USER)",
        }},
    }  # fmt: skip
    config, notes = convert([values])
    listed = notes_by_path(notes)
    nested = listed["hub.config.GitHubOAuthenticator.Authenticator"]
    assert "never reads it" in nested and "hub.config.Authenticator" in nested
    assert "does not start" in listed["hub.config.loadRoles"]
    assert "cannot start a server" in listed["singleuser.extraEnv.DASK_GATEWAY__IMAGE"]
    assert "{JUPYTER_IMAGE_SPEC}" in listed["singleuser.extraEnv.DASK_GATEWAY__IMAGE"]
    assert "{JUPYTERHUB_USER}, {port}" in listed["singleuser.extraEnv.DASHBOARD"]
    assert config["spawner"]["user_environment"] == {"FINE": "$(JUPYTERHUB_USER)"}


# --- what people's servers get --------------------------------------------------------------

CHART_DEFAULTS = {"singleuser": {"memory": {"guarantee": "1G"}}}  # zero-to-jupyterhub's values.yaml


def z2jh_spawner_config(values: dict) -> Config:
    """What zero-to-jupyterhub's jupyterhub_config.py sets for servers from its values (the
    parts these tests use), then its `hub.config` sections loaded over it."""
    values = merge([CHART_DEFAULTS, values])
    single, c = values.get("singleuser") or {}, Config()
    image = at(single, "image.name")
    if image:
        c.KubeSpawner.image = f"{image}:{at(single, 'image.tag')}" if at(single, "image.tag") else image
    for trait, key in (("mem_guarantee", "memory.guarantee"), ("mem_limit", "memory.limit"),
                       ("cpu_guarantee", "cpu.guarantee"), ("cpu_limit", "cpu.limit"),
                       ("extra_resource_limits", "extraResource.limits"), ("node_selector", "nodeSelector"),
                       ("environment", "extraEnv"), ("profile_list", "profileList")):  # fmt: skip
        if at(single, key) is not None:
            setattr(c.KubeSpawner, trait, copy.deepcopy(at(single, key)))
    if single.get("defaultUrl"):
        c.Spawner.default_url = single["defaultUrl"]
    tolerations = (at(values, "scheduling.userPods.tolerations") or []) + (single.get("extraTolerations") or [])
    if tolerations:
        c.KubeSpawner.tolerations = tolerations
    volumes = {v["name"]: v for v in at(single, "storage.extraVolumes") or []}
    mounts = {str(i): m for i, m in enumerate(at(single, "storage.extraVolumeMounts") or [])}
    files = single.get("extraFiles") or {}
    if files:
        items = [{"key": k, "path": k, **({"mode": f["mode"]} if "mode" in f else {})} for k, f in files.items()]
        volumes["files"] = {"name": "files", "secret": {"secretName": "singleuser", "items": items}}
        for i, (key, details) in enumerate(files.items()):
            mounts[f"{i}-files"] = {"mountPath": details["mountPath"], "subPath": key, "name": "files"}
    c.KubeSpawner.volumes, c.KubeSpawner.volume_mounts = list(volumes.values()), list(mounts.values())
    for section, settings in (at(values, "hub.config") or {}).items():
        c[section].update(copy.deepcopy(settings))
    return c


def kept_in_chart(values: dict, notes) -> dict:
    """What `convert` says stays in the chart's values."""
    kept: dict = {}
    for note in notes:
        if "keep it in the chart" in note.what and at(values, note.path) is not None:
            kept = merge([kept, placed(note.path, copy.deepcopy(at(values, note.path)))])
    return kept


def person(name="ana.lu@example.org"):
    return SimpleNamespace(name=name, id=3, url="/user/x/", admin=False, groups=[])


async def pod_of(spawner, selection: dict) -> dict:
    spawner.user_options = dict(selection)
    await spawner.load_user_options()
    async with ApiClient() as api:
        pod = api.sanitize_for_serialization(await spawner.get_pod_manifest())
    container = pod["spec"]["containers"][0]
    env = [e for e in container.get("env") or [] if not e["name"].startswith(("JUPYTERHUB_API", "JPY_API"))]
    env = [e for e in env if e["name"] not in ("JUPYTERHUB_OAUTH_SCOPES", "JUPYTERHUB_OAUTH_ACCESS_SCOPES")]
    return {
        "image": container["image"],
        "resources": container.get("resources"),
        "node_selector": pod["spec"].get("nodeSelector"),
        "tolerations": sorted(json.dumps(t, sort_keys=True) for t in pod["spec"].get("tolerations") or []),
        "env": env,
        "volumes": sorted(json.dumps(v, sort_keys=True) for v in pod["spec"].get("volumes") or []),
        "volume_mounts": sorted(json.dumps(m, sort_keys=True) for m in container.get("volumeMounts") or []),
    }


def every_selection(profiles: list[dict]) -> list[dict]:
    selections = []
    for profile in profiles:
        selections.append({"profile": profile["slug"]})
        for key, option in (profile.get("profile_options") or {}).items():
            selections += [{"profile": profile["slug"], key: choice} for choice in option["choices"]]
    return selections


@pytest.mark.parametrize("path", ["", "basehub.jupyterhub"], ids=["z2jh", "daskhub"])
async def test_every_server_gets_the_same_pod(path):
    layers = [placed(path, HUB), placed(path, TAG)]
    config, notes = convert(layers, "Example Lab")
    values = at(merge(layers), path)
    prefix = f"{path}." if path else ""
    kept = at(kept_in_chart(merge(layers), notes), path) or {}
    assert set(kept["singleuser"]) == {"extraFiles", "extraTolerations", "extraEnv", "storage"}
    assert set(kept["singleuser"]["extraEnv"]) == {"HOME_LINK", "API_KEY", "CONDA_DIR"}
    assert config["spawner"]["user_environment"] == {
        "SCRATCH_BUCKET": "s3://example-scratch/$(JUPYTERHUB_USER)",
        "PERSISTENT_BUCKET": "s3://example-persistent/$(JUPYTERHUB_USER)",
    }
    why = notes_by_path(notes)
    assert "a profile sets it too" in why[f"{prefix}singleuser.extraEnv.CONDA_DIR"]
    assert "safe slug" in why[f"{prefix}singleuser.extraEnv.HOME_LINK"]

    ours = z2jh_spawner_config({**kept, "singleuser": {**kept["singleuser"], "profileList": []}})
    servers.spawner(ours, parse_config(yaml.safe_dump(config)))
    compared = 0
    for selection in every_selection(values["singleuser"]["profileList"]):
        original = await pod_of(KubeSpawner(_mock=True, user=person(), config=z2jh_spawner_config(values)), selection)
        converted = await pod_of(ProfileKubeSpawner(_mock=True, user=person(), config=copy.deepcopy(ours)), selection)
        assert converted == original, selection
        names = [e["name"] for e in converted["env"]]
        assert names.index("JUPYTERHUB_USER") < names.index("SCRATCH_BUCKET")  # Kubernetes fills $(...) in order
        compared += 1
    assert compared == 5
    # the singleuser node selector merged into each profile's, key by key, as KubeSpawner does
    gpu, large = config["profiles"][1]["kubespawner_override"], config["profiles"][2]["kubespawner_override"]
    assert gpu["node_selector"] == {
        "example.org/hub-name": "research",
        "node.kubernetes.io/instance-type": "g4dn.xlarge",
    }
    assert large["node_selector"] == {"node.kubernetes.io/instance-type": "r5.xlarge"}
