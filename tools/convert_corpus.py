"""Convert every hub of real deployment repositories and report what comes in whole.

    .venv/bin/python tools/convert_corpus.py /tmp/corpus/infrastructure /tmp/corpus/datahub \
        [--json out.json] [--z2jh DIR] [--only NAME]

Each DIR is a checkout of a public deployment repository (fetched, never committed). The
values sets of its hubs are found the way the repository's own deployer layers them:

- 2i2c-org/infrastructure: `config/clusters/<cluster>/cluster.yaml` lists each hub, its
  chart (basehub, or daskhub: basehub's values one level deeper, under `basehub:`) and
  its `helm_chart_values_files` in order; below them come the chart's `values.yaml` and its
  rendered `values.jsonnet` (needs the `jsonnet` Python package; without it the layer is
  left out and said so). Encrypted `enc-*.secret.*` files are left out (secrets absent).
- hubploy repositories (berkeley-dsep-infra/datahub, pangeo-cloud-federation): the chart
  that wraps z2jh (a top-level folder with a Chart.yaml), then
  `deployments/<hub>/config/common.yaml`, then `<env>.yaml` (staging, prod), then the
  image hubploy sets from `hubploy.yaml` (`--set-string <path>.name/.tag`).
- a values file given directly (FILE, or FILE1,FILE2 layered): one hub.

For each values set: convert it with `twoi2c_hub.replicate.convert`, validate the result as
`twoi2c-hub check-config` does, and then, for every profile and every choice of the
original profile list, build the pod KubeSpawner builds

- from the original values: z2jh's own jupyterhub_config.py run on the chart's default
  values and these (hub.extraConfig not run: it is Python), a KubeSpawner;
- from ours: z2jh's jupyterhub_config.py run on the chart defaults and only what `convert`
  said to keep in the chart's values (deployment settings, and the server settings the
  chart applies that have no community setting), then `twoi2c_hub`'s wiring of the
  converted config, a ProfileKubeSpawner;

and compare image, resources, node selector, tolerations, environment, volumes and volume
mounts. Offers are compared for every group set: no group, each group named in an
`allowed_groups`, all of them; the original filtered as 2i2c's basehub filters (groups
casefolded; a profile, choice or write-in with `allowed_groups` only for members).

The values are layered as Helm layers them by `twoi2c_hub.replicate.helm.helm_values`,
the product's own. Not part of `make test`: it reads third-party repositories.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from twoi2c_hub.replicate.helm import Z2JH_PATHS as Z2JH_PREFIXES
from twoi2c_hub.replicate.helm import at as peek
from twoi2c_hub.replicate.helm import helm_values, merge

Z2JH_MIRROR = Path("/work/.mirror/jupyterhub+zero-to-jupyterhub-k8s/repo")
VOLATILE_ENV = {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_OAUTH_ACCESS_SCOPES", "JUPYTERHUB_OAUTH_SCOPES"}
FAKE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]
current-context: nowhere
users: [{name: nobody, user: {token: not-a-token}}]
"""
ONLY = ""


# --- values sets ------------------------------------------------------------------------


@dataclass
class ValuesSet:
    corpus: str
    name: str
    files: list[str]
    layers: list[dict] = field(default_factory=list)
    staging: bool = False
    problems: list[str] = field(default_factory=list)  # files that could not be read
    templated: list[str] = field(default_factory=list)
    secret_files: list[str] = field(default_factory=list)  # sops files: keys read, values stood in for
    chart_layers: int = 0  # how many of the first layers are the chart's own values.yaml


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CACHE: dict[Path, tuple] = {}


def read_yaml(path: Path, vset: ValuesSet) -> dict | None:
    """The file's values (a copy), or None with the problem noted on `vset`."""
    if path not in _CACHE:
        problems: list[str] = []
        templated: list[str] = []
        scratch = SimpleNamespace(problems=problems, templated=templated)
        _CACHE[path] = (_read_yaml(path, scratch), problems, templated)
    data, problems, templated = _CACHE[path]
    vset.problems += problems
    vset.templated += templated
    return copy.deepcopy(data)


def _read_yaml(path: Path, vset: Any) -> dict | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        vset.problems.append(f"{path.name}: cannot read ({e})")
        return None
    if re.search(r"\{%|\{\{", text):
        vset.templated.append(path.name)
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        vset.problems.append(f"{path.name}: not YAML ({str(e).splitlines()[0]})")
        return None
    if data is not None and not isinstance(data, dict):
        vset.problems.append(f"{path.name}: not a mapping")
        return None
    return data or {}


_ENCRYPTED = re.compile(r"^ENC\[AES256_GCM,.*type:(\w+)\]$")
PLACEHOLDER = {"str": "encrypted-value", "int": 1, "float": 1.0, "bool": True}


def unencrypted(data: Any) -> Any:
    """A sops-encrypted file's shape (its keys are plain) with stand-ins for its values:
    the real deployment reads them, so the layering must see them (a later map keeps a
    default an earlier `null` would remove)."""
    if isinstance(data, dict):
        return {k: unencrypted(v) for k, v in data.items() if k != "sops"}
    if isinstance(data, list):
        return [unencrypted(v) for v in data]
    if isinstance(data, str):
        match = _ENCRYPTED.match(data)
        if match:
            return PLACEHOLDER.get(match.group(1), "encrypted-value")
    return data


def read_secret(path: Path, vset: ValuesSet) -> dict | None:
    if not path.exists():
        return None
    data = read_yaml(path, vset)
    if data is None or "sops" not in data:
        vset.problems.append(f"{path.name}: not a sops YAML file, left out")
        return None
    vset.secret_files.append(path.name)
    return unencrypted(data)


def render_jsonnet(path: Path, ext_vars: dict[str, str], as_path: str, vset: ValuesSet) -> dict | None:
    try:
        import _jsonnet
    except ImportError:
        vset.problems.append(f"{path.name}: not rendered (pip install jsonnet)")
        return None
    try:
        return json.loads(_jsonnet.evaluate_snippet(as_path, path.read_text(), ext_vars=ext_vars))
    except Exception as e:  # jsonnet's errors are RuntimeError
        vset.problems.append(f"{path.name}: jsonnet failed ({str(e).splitlines()[0]})")
        return None


def twoi2c_sets(root: Path) -> list[ValuesSet]:
    sets = []
    for cluster_file in sorted(root.glob("config/clusters/*/cluster.yaml")):
        cluster_dir = cluster_file.parent
        cluster = yaml.safe_load(cluster_file.read_text()) or {}
        provider = cluster.get("provider", "")
        account = str(
            (cluster.get("aws") or {}).get("account") or (cluster.get("gcp") or {}).get("project") or "account"
        )
        for hub in cluster.get("hubs") or []:
            chart = hub.get("helm_chart", "basehub")
            files = list(hub.get("helm_chart_values_files") or [])
            vset = ValuesSet(root.name, f"{cluster_dir.name}/{hub['name']}", files, staging="staging" in hub["name"])
            if ONLY and ONLY not in vset.name:
                continue
            base = read_yaml(root / "helm-charts/basehub/values.yaml", vset) or {}
            vset.layers.append({"basehub": base} if chart == "daskhub" else base)
            vset.chart_layers = 1
            ext_vars = {
                "VARS_2I2C_HUB_NAME": hub["name"],
                "VARS_2I2C_CLUSTER_NAME": cluster.get("name", cluster_dir.name),
                "VARS_2I2C_PROVIDER": provider,
                "VARS_2I2C_HUB_DOMAIN": hub.get("domain", "hub.example.org"),
                "VARS_2I2C_ACCOUNT_ID": account,
            }
            rendered = render_jsonnet(
                root / "helm-charts/basehub/values.jsonnet",
                ext_vars,
                f"{root}/helm-charts/{chart}/values.jsonnet",
                vset,
            )
            if rendered is not None:
                vset.layers.append(rendered)
            for name in files:
                path = cluster_dir / name
                if "secret" in os.path.basename(name):
                    data = read_secret(path, vset)
                elif name.endswith(".jsonnet"):
                    data = render_jsonnet(path, ext_vars, str(path), vset)
                else:
                    data = read_yaml(path, vset)
                if data is not None:
                    vset.layers.append(data)
            sets.append(vset)
    return sets


def _hubploy_chart(root: Path) -> Path | None:
    for chart in sorted(root.glob("*/Chart.yaml")):
        text = chart.read_text()
        requirements = chart.parent / "requirements.yaml"
        if requirements.exists():
            text += requirements.read_text()
        if re.search(r"name:\s*(jupyterhub|daskhub)\b", text) and (chart.parent / "values.yaml").exists():
            return chart.parent
    return None


def _set_path(data: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[last] = value


def hubploy_sets(root: Path) -> list[ValuesSet]:
    chart = _hubploy_chart(root)
    sets = []
    for deployment in sorted(p.parent.parent for p in root.glob("deployments/*/config/common.yaml")):
        if deployment.name == "template":
            continue
        hubploy = (
            yaml.safe_load((deployment / "hubploy.yaml").read_text()) if (deployment / "hubploy.yaml").exists() else {}
        )
        for env in ("staging", "prod"):
            files = ["config/common.yaml"] + (
                [f"config/{env}.yaml"] if (deployment / f"config/{env}.yaml").exists() else []
            )
            vset = ValuesSet(root.name, f"{deployment.name}/{env}", list(files), staging=env == "staging")
            if ONLY and ONLY not in vset.name:
                continue
            if chart is not None:
                vset.layers.append(read_yaml(chart / "values.yaml", vset) or {})
                vset.chart_layers = 1
                vset.files.insert(0, f"{chart.name}/values.yaml")
            for name in files:
                data = read_yaml(deployment / name, vset)
                if data is not None:
                    vset.layers.append(data)
            secret = read_secret(deployment / f"secrets/{env}.yaml", vset)
            if secret is not None:
                vset.layers.append(secret)
                vset.files.append(f"secrets/{env}.yaml (sops: values stood in for)")
            images = (hubploy or {}).get("images") or {}
            path = images.get("image_config_path") or "jupyterhub.singleuser.image"
            specs = (
                [images["image_name"]]
                if images.get("image_name")
                else [i.get("name") for i in images.get("images") or []]
            )
            if specs and specs[0]:
                name, _, tag = specs[0].partition(":")
                image: dict = {}
                _set_path(image, path + ".name", name)
                if tag:
                    _set_path(image, path + ".tag", tag)
                vset.layers.append(image)
                vset.files.append(f"hubploy.yaml image -> {path}")
            sets.append(vset)
    return sets


def discover(arg: str) -> list[ValuesSet]:
    paths = [Path(p) for p in arg.split(",")]
    if all(p.is_file() for p in paths):
        vset = ValuesSet(paths[0].parent.name, paths[0].stem, [str(p) for p in paths])
        vset.layers = [d for d in (read_yaml(p, vset) for p in paths) if d is not None]
        return [vset]
    root = paths[0]
    if (root / "config/clusters").is_dir():
        return twoi2c_sets(root)
    if list(root.glob("deployments/*/config/common.yaml")):
        return hubploy_sets(root)
    return []


# --- z2jh's own jupyterhub_config.py --------------------------------------------------


def z2jh_prefix(merged: dict) -> str | None:
    for prefix in Z2JH_PREFIXES:
        node = peek(merged, prefix)
        if isinstance(node, dict) and ("singleuser" in node or "hub" in node):
            return prefix
    return None


class Z2JH:
    """The chart's jupyterhub_config.py and default values."""

    def __init__(self, where: Path):
        def show(path: str) -> str:
            if (where / "HEAD").exists():  # a bare git dir
                command = ["git", f"--git-dir={where}", "show", f"HEAD:{path}"]
                return subprocess.run(command, capture_output=True, text=True, check=True).stdout
            return (where / path).read_text()

        self.source = show("jupyterhub/files/hub/jupyterhub_config.py")
        # the curl client is an optimisation of the real hub; pycurl is not needed here
        self.source = self.source.replace(
            'AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient")', ""
        )
        self.defaults = yaml.safe_load(show("jupyterhub/values.yaml"))

    def config(self, values: dict) -> Any:
        """The traitlets Config z2jh's jupyterhub_config.py makes of `values`."""
        from traitlets.config import Config

        data = merge([self.defaults, values])
        data.setdefault("hub", {})["extraConfig"] = {}

        def get_config(key: str, default: Any = None) -> Any:
            return copy.deepcopy(peek(data, key, default))

        def set_config_if_not_none(parent: Any, name: str, key: str) -> None:
            value = get_config(key)
            if value is not None:
                setattr(parent, name, value)

        module = types.ModuleType("z2jh")
        module.get_config = get_config
        module.set_config_if_not_none = set_config_if_not_none
        module.get_name = lambda name: name
        module.get_name_env = lambda name, suffix="": "8081"
        module.get_secret_value = lambda key, default=None: "0" * 64
        c = Config()
        saved_module, saved_path = sys.modules.get("z2jh"), list(sys.path)
        sys.modules["z2jh"] = module
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(
                    compile(self.source, "jupyterhub_config.py", "exec"), {"get_config": lambda: c, "__file__": "/x.py"}
                )
        finally:
            sys.path[:] = saved_path
            if saved_module is None:
                sys.modules.pop("z2jh", None)
            else:
                sys.modules["z2jh"] = saved_module
        return c


# --- offers ---------------------------------------------------------------------------


def allowed_groups_of(profiles: list[dict]) -> set[str]:
    groups: set[str] = set()
    for profile in profiles:
        groups |= set(profile.get("allowed_groups") or [])
        for option in (profile.get("profile_options") or {}).values():
            groups |= set((option.get("unlisted_choice") or {}).get("allowed_groups") or [])
            for choice in (option.get("choices") or {}).values():
                groups |= set(choice.get("allowed_groups") or [])
    return groups


def basehub_offers(profiles: list[dict], groups: set[str]) -> list[dict]:
    """2i2c's basehub `05-profile-groups` filter (groups casefolded)."""
    groups = {g.casefold() for g in groups}
    offered = []
    for original in profiles:
        profile = copy.deepcopy(original)
        for option in (profile.get("profile_options") or {}).values():
            unlisted = option.get("unlisted_choice")
            if unlisted and "allowed_groups" in unlisted:
                if not ({g.casefold() for g in unlisted["allowed_groups"]} & groups):
                    del option["unlisted_choice"]
            if "choices" in option:
                option["choices"] = {
                    k: c
                    for k, c in option["choices"].items()
                    if "allowed_groups" not in c or {g.casefold() for g in c["allowed_groups"]} & groups
                }
        if "allowed_groups" not in profile or {g.casefold() for g in profile["allowed_groups"]} & groups:
            offered.append(profile)
    return offered


def offer_signature(profiles: list[dict]) -> dict:
    signature = {}
    for profile in profiles:
        options = {}
        for key, option in (profile.get("profile_options") or {}).items():
            unlisted = option.get("unlisted_choice") or {}
            options[key] = {"choices": sorted(option.get("choices") or {}), "write_in": bool(unlisted.get("enabled"))}
        signature[profile.get("slug")] = options
    return signature


# --- pods -----------------------------------------------------------------------------


def make_user(groups: list[str], name: str = "corpus-user") -> SimpleNamespace:
    return SimpleNamespace(
        name=name, id=7, url=f"/user/{name}/", admin=False, groups=[SimpleNamespace(name=g) for g in groups]
    )


async def pod_dict(spawner: Any, selection: dict) -> dict:
    from kubernetes_asyncio.client import ApiClient

    spawner.user_options = selection
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        return api.sanitize_for_serialization(pod)


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def pod_summary(pod: dict) -> dict:
    spec = pod.get("spec") or {}
    container = (spec.get("containers") or [{}])[0]
    resources = container.get("resources") or {}
    env_list = [e for e in container.get("env") or [] if e["name"] not in VOLATILE_ENV]
    return {
        "image": container.get("image"),
        "resources": {
            kind: {k: _number(v) for k, v in (resources.get(kind) or {}).items()} for kind in ("requests", "limits")
        },
        "node_selector": spec.get("nodeSelector") or {},
        "tolerations": sorted(json.dumps(t, sort_keys=True) for t in spec.get("tolerations") or []),
        "env": {e["name"]: e.get("value", e.get("valueFrom")) for e in env_list},
        "env_order": [e["name"] for e in env_list],
        "volumes": {v["name"]: v for v in spec.get("volumes") or []},
        "volume_mounts": sorted(json.dumps(m, sort_keys=True) for m in container.get("volumeMounts") or []),
    }


def env_reference_problems(summary: dict) -> list[str]:
    """`$(VAR)` in a value is expanded by Kubernetes only if VAR comes earlier in the list."""
    problems, seen = [], set()
    for name in summary["env_order"]:
        value = summary["env"].get(name)
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value if isinstance(value, str) else ""):
            if ref not in seen:
                problems.append(f"{name} uses $({ref}) before {ref} is set")
        seen.add(name)
    return problems


def compare(orig: dict, ours: dict) -> list[tuple[str, str]]:
    """(cause, detail) for each difference: the cause names the field and key, to count."""
    diffs = []
    for key in ("image", "resources", "node_selector", "volumes"):
        a, b = orig[key], ours[key]
        if a == b:
            continue
        if isinstance(a, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    what = "lost" if k not in b else "added" if k not in a else "changed"
                    diffs.append((f"{key}.{k} {what}", f"{a.get(k)!r} -> {b.get(k)!r}"[:200]))
        else:
            diffs.append((f"{key} changed", f"{a!r} -> {b!r}"[:200]))
    for key in ("tolerations", "volume_mounts"):
        lost, added = set(orig[key]) - set(ours[key]), set(ours[key]) - set(orig[key])
        for item in sorted(lost):
            diffs.append((f"{key} lost", item[:200]))
        for item in sorted(added):
            diffs.append((f"{key} added", item[:200]))
    for k, v in orig["env"].items():
        if ours["env"].get(k) != v:
            what = "lost" if k not in ours["env"] else "changed"
            diffs.append((f"env.{k} {what}", f"{v!r} -> {ours['env'].get(k)!r}"[:200]))
    for k in sorted(set(ours["env"]) - set(orig["env"])):
        diffs.append((f"env.{k} added", repr(ours["env"][k])[:200]))
    before = env_reference_problems(orig)
    for problem in env_reference_problems(ours):
        if problem not in before:
            diffs.append(("env order: $(VAR) before VAR", problem))
    return diffs


def selections(profiles: list[dict]) -> list[dict]:
    if not profiles:
        return [{}]
    out = []
    for profile in profiles:
        options = profile.get("profile_options") or {}
        if not any(o.get("choices") for o in options.values()):
            out.append({"profile": profile["slug"]})
        for key, option in options.items():
            for choice in option.get("choices") or {}:
                out.append({"profile": profile["slug"], key: choice})
    return out


# --- one hub --------------------------------------------------------------------------


def kept_values(z2jh_values: dict, notes: list, prefix: str) -> dict:
    """What `convert` said to keep in the chart's values (deployment settings)."""
    kept: dict = {}
    for note in notes:
        what = str(getattr(note, "what", note))
        path = str(getattr(note, "path", ""))
        if "deployment setting" not in what and "keep it in the chart" not in what:
            continue
        if prefix and path.startswith(prefix + "."):
            path = path[len(prefix) + 1 :]
        value = peek(z2jh_values, path, None)
        if value is not None:
            _set_path(kept, path, copy.deepcopy(value))
    return kept


def first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else repr(text)


async def run_hub(vset: ValuesSet, z2jh: Z2JH) -> dict:
    from kubespawner import KubeSpawner
    from traitlets.config import Config

    from twoi2c_hub.config.loading import ConfigError, parse_config
    from twoi2c_hub.hub import servers
    from twoi2c_hub.replicate.convert import convert
    from twoi2c_hub.spawners.kube import ProfileKubeSpawner

    result: dict[str, Any] = {
        "corpus": vset.corpus,
        "hub": vset.name,
        "staging": vset.staging,
        "files": vset.files,
        "read_problems": vset.problems,
        "templated": vset.templated,
        "encrypted_files_as_shapes": vset.secret_files,
    }
    merged = helm_values(vset.layers, vset.chart_layers)
    prefix = z2jh_prefix(merged)
    naive = merge(vset.layers)  # each null removing at once, as a plain layering does
    if naive != merged:
        result["helm_null_differs"] = True
    result["layout"] = {None: "none", "": "plain z2jh"}.get(prefix, f"under {prefix}:")
    z2jh_values = peek(merged, prefix) if prefix is not None else {}
    original_profiles = peek(z2jh_values, "singleuser.profileList") or []
    result["profiles"] = len(original_profiles)
    result["facts"] = hub_facts(z2jh_values)

    # convert
    try:
        config, notes = convert(copy.deepcopy(vset.layers), vset.name.split("/")[-1], chart_layers=vset.chart_layers)
    except Exception as e:
        result.update(converted=False, reason=f"convert raised {type(e).__name__}: {first_line(e)}")
        return result
    result["converted"] = True
    result["causes"] = []
    if result["layout"] != "plain z2jh" and not (config.get("profiles")) and original_profiles:
        result["causes"].append(f"convert: profiles {result['layout']} not read")
    if (config.get("auth") or {}).get("provider") == "demo" and peek(
        z2jh_values, "hub.config.JupyterHub.authenticator_class"
    ):
        result["causes"].append(
            f"convert: authenticator {peek(z2jh_values, 'hub.config.JupyterHub.authenticator_class')} -> demo"
        )
    original_class = peek(z2jh_values, "hub.config.JupyterHub.authenticator_class")
    result["auth_kept"] = not (original_class and (config.get("auth") or {}).get("provider") in (None, "demo"))
    roles = peek(z2jh_values, "hub.loadRoles") or {}
    result["roles_kept"] = {r.get("name", k) for k, r in roles.items() if isinstance(r, dict)} <= {
        r.get("name") for r in config.get("roles") or [] if isinstance(r, dict)
    }
    if not result["roles_kept"]:
        result["causes"].append("convert: hub.loadRoles dropped")
    result["auth_provider"] = (config.get("auth") or {}).get("provider")
    result["not_converted"] = [str(n) for n in notes]
    result["converted_profiles"] = len(config.get("profiles") or [])

    # check-config
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    community = None
    try:
        community = parse_config(text, "converted")
        result["check_config"] = True
    except ConfigError as e:
        result["check_config"] = False
        result["check_config_errors"] = e.errors
        result["causes"] += sorted({f"check-config: {kind(err)}" for err in e.errors})
        result.setdefault("reason", f"check-config: {e.errors[0]}")
    except Exception as e:
        result["check_config"] = False
        result["check_config_errors"] = [f"raised {type(e).__name__}: {first_line(e)}"]
        result.setdefault("reason", f"check-config raised {type(e).__name__}: {first_line(e)}")

    # the two spawners' configs
    try:
        orig_config = z2jh.config(z2jh_values)
        ours_config = z2jh.config({**kept_values(z2jh_values, notes, prefix or ""), "singleuser": {
            **kept_values(z2jh_values, notes, prefix or "").get("singleuser", {}), "profileList": []}})  # fmt: skip
        if community is not None:
            servers.spawner(ours_config, community)
        else:  # compare what the converted profiles would do, even though check-config refuses them
            section = ours_config.ProfileKubeSpawner
            section.profile_list = config.get("profiles") or []
            spawner_data = config.get("spawner") or {}
            section.user_environment = spawner_data.get("user_environment") or {}
            if spawner_data.get("default_url"):
                section.default_url = spawner_data["default_url"]
    except Exception as e:
        result.update(pods_same=None, offers_same=None)
        result.setdefault("reason", f"building the spawners' config raised {type(e).__name__}: {first_line(e)}")
        return result

    probe = KubeSpawner(_mock=True, user=make_user([]), config=Config())
    initialized = probe._get_initialized_profile_list(original_profiles) if original_profiles else []

    # offers
    groups = sorted(allowed_groups_of(initialized))
    group_sets = [[]] + [[g] for g in groups] + ([groups] if len(groups) > 1 else [])
    offer_diffs = []
    for group_set in group_sets:
        expected = offer_signature(basehub_offers(initialized, set(group_set)))
        if not initialized:  # no profile list: one server, no choices
            expected = {"(one default server)": {}}
        ours_spawner = ProfileKubeSpawner(_mock=True, user=make_user(group_set), config=copy.deepcopy(ours_config))
        try:
            got = offer_signature(await ours_spawner.offered_profiles())
            if not initialized and len(got) == 1 and not next(iter(got.values())):
                got = {"(one default server)": {}}
        except Exception as e:
            got = {"error": f"{type(e).__name__}: {first_line(e)}"}
        if expected != got:
            causes_offer = "none offered" if not got else "some missing" if set(expected) - set(got) else "differ"
            result["causes"].append(f"offers: {causes_offer}")
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            differ = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
            offer_diffs.append(
                f"groups {group_set}: missing {missing[:3]} extra {extra[:3]} differ {differ[:3]}"
                + (f" ({got['error']})" if "error" in got else "")
            )
    result["group_sets"] = len(group_sets)
    result["offers_same"] = not offer_diffs
    result["offer_diffs"] = offer_diffs[:5]

    # pods
    causes = set(result["causes"])
    all_groups = groups or []
    pod_diffs, compared = [], 0
    for selection in selections(initialized):
        try:
            orig_spawner = KubeSpawner(_mock=True, user=make_user(all_groups), config=copy.deepcopy(orig_config))
            orig = pod_summary(await pod_dict(orig_spawner, dict(selection)))
        except Exception as e:
            pod_diffs.append(f"{selection}: the original pod cannot be built ({type(e).__name__}: {first_line(e)})")
            causes.add(f"pod: original cannot be built: {type(e).__name__}")
            continue
        try:
            ours_spawner = ProfileKubeSpawner(_mock=True, user=make_user(all_groups), config=copy.deepcopy(ours_config))
            ours = pod_summary(await pod_dict(ours_spawner, dict(selection)))
        except Exception as e:
            pod_diffs.append(f"{selection}: ours refuses or fails ({type(e).__name__}: {first_line(e)})")
            causes.add(f"pod: ours refuses the selection: {kind(first_line(e))[:60]}")
            continue
        compared += 1
        for cause, detail in compare(orig, ours):
            causes.add(f"pod: {cause}")
            pod_diffs.append(f"{selection}: {cause}: {detail}")
    result["selections"] = len(selections(initialized))
    result["pods_compared"] = compared
    result["pods_same"] = not pod_diffs
    result["pod_diffs"] = pod_diffs[:8] + [d for d in pod_diffs[8:] if "volume" not in d][:8]
    result["causes"] = sorted(causes)
    if not result.get("reason"):
        if offer_diffs:
            result["reason"] = "offers: " + offer_diffs[0]
        elif pod_diffs:
            result["reason"] = "pods: " + pod_diffs[0]
    return result


def hub_facts(values: dict) -> dict:
    """What the corpus teaches: authenticators, roles, images, environment."""
    hub_config = peek(values, "hub.config") or {}
    env = peek(values, "singleuser.extraEnv") or {}
    return {
        "authenticator_class": peek(hub_config, "JupyterHub.authenticator_class"),
        "hub_config_sections": sorted(hub_config) if isinstance(hub_config, dict) else [],
        "load_roles": {
            name: sorted(k for k in (role or {}) if k != "name")
            for name, role in (peek(values, "hub.loadRoles") or {}).items()
        },
        "image": peek(values, "singleuser.image"),
        "env_with_user": sorted(
            k
            for k, v in (env.items() if isinstance(env, dict) else [])
            if isinstance(v, str) and "JUPYTERHUB_USER" in v
        ),
        "extra_config_keys": sorted(peek(values, "hub.extraConfig") or {}),
    }


# --- report ---------------------------------------------------------------------------


def kind(reason: str | None) -> str:
    """A reason with its particulars taken out, to count alike failures together."""
    if not reason:
        return ""
    text = re.sub(r"\[\d+\]", "[i]", reason)
    text = re.sub(r"No such profile: .*", "No such profile", text)
    text = re.sub(r"\{'profile'[^}]*\}", "{selection}", text)
    text = re.sub(r"\.choices\.[^.:]+", ".choices.<c>", text)
    text = re.sub(r"\.profile_options\.[^.:]+", ".profile_options.<o>", text)
    text = re.sub(r"'[^']*' -> '[^']*'", "'x' -> 'y'", text)
    text = re.sub(r"groups \[[^\]]*\]", "groups [...]", text)
    return text[:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="repository checkouts, or values files (a,b layered)")
    parser.add_argument("--json", help="write every hub's result here")
    parser.add_argument("--z2jh", default=str(Z2JH_MIRROR), help="z2jh chart: a checkout or bare git dir")
    parser.add_argument("--only", help="only hubs whose name contains this")
    args = parser.parse_args(argv)
    global ONLY
    ONLY = args.only or ""
    logging.disable(logging.WARNING)
    # KubeSpawner loads a kubeconfig when constructed; one that points nowhere (no API call is made)
    kubeconfig = Path(tempfile.mkdtemp(prefix="corpus-")) / "kubeconfig.yaml"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    os.environ["KUBECONFIG"] = str(kubeconfig)

    z2jh = Z2JH(Path(args.z2jh))
    results = []
    for arg in args.dirs:
        sets = discover(arg)
        if not sets:
            print(f"{arg}: no values sets found", file=sys.stderr)
        for vset in sets:
            if args.only and args.only not in vset.name:
                continue
            try:
                results.append(asyncio.run(run_hub(vset, z2jh)))
            except Exception as e:  # the tool's own failure, reported as such
                if os.environ.get("CORPUS_DEBUG"):
                    raise
                results.append({"corpus": vset.corpus, "hub": vset.name, "converted": False,
                                "reason": f"tool error {type(e).__name__}: {first_line(e)}"})  # fmt: skip

    yes = lambda v: {True: "yes", False: "no", None: "-"}.get(v, "-")  # noqa: E731
    print(f"{'hub':42} {'prof':>4} {'conv':>4} {'check':>5} {'pods':>4} {'offer':>5} {'auth':>4} {'role':>4}  reason")
    for r in results:
        print(
            f"{r['corpus'][:12] + ':' + r['hub']:42.42} {r.get('profiles', 0):>4} {yes(r.get('converted')):>4} "
            f"{yes(r.get('check_config')):>5} {yes(r.get('pods_same')):>4} {yes(r.get('offers_same')):>5} "
            f"{yes(r.get('auth_kept')):>4} {yes(r.get('roles_kept')):>4}  "
            f"{(r.get('reason') or '')[:150]}"
        )
    print()
    for corpus in sorted({r["corpus"] for r in results}):
        rs = [r for r in results if r["corpus"] == corpus]
        with_profiles = [r for r in rs if r.get("profiles")]

        def count(key: str, rs: list = rs) -> int:
            return sum(bool(r.get(key)) for r in rs)

        whole = lambda r: all(  # noqa: E731
            r.get(k) for k in ("converted", "check_config", "pods_same", "offers_same", "auth_kept", "roles_kept")
        )
        print(
            f"{corpus}: {len(rs)} values sets ({len(with_profiles)} with a profileList): "
            f"converted {count('converted')}, check-config {count('check_config')}, "
            f"same pods {count('pods_same')}, same offers {count('offers_same')}, "
            f"authenticator kept {count('auth_kept')}, roles kept {count('roles_kept')}, "
            f"whole {sum(bool(whole(r)) for r in rs)} (with profiles: {sum(bool(whole(r)) for r in with_profiles)})"
        )
        print("  first reasons:")
        for reason, count in Counter(kind(r.get("reason")) for r in rs if not whole(r)).most_common():
            print(f"  {count:4} {reason}")
        print("  every cause (hubs):")
        for cause, count in Counter(c for r in rs for c in r.get("causes", [])).most_common():
            print(f"  {count:4} {cause}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
