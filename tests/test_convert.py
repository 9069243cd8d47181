"""`twoi2c-hub convert`: zero-to-jupyterhub values (layered as Helm layers them, and 2i2c's
basehub layout) become a community config that passes check-config, offers each group set
exactly what the original hub offered, builds the same pods, and lists what it left out."""

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import Config

from twoi2c_hub import catalog
from twoi2c_hub.cli import main as cli
from twoi2c_hub.config import parse_config
from twoi2c_hub.replicate.helm import merge
from twoi2c_hub.spawners.kube import ProfileKubeSpawner

VALUES = Path(__file__).parent / "data" / "z2jh"
GITHUB = ["github-config.yaml", "github-secrets.yaml", "github-staging.yaml"]


def converted(files, tmp_path, capsys) -> tuple[dict, list[str]]:
    out = tmp_path / "community.yaml"
    code = cli(["convert", *[str(VALUES / f) for f in files], "--out", str(out)])
    notes = [line.removeprefix("not converted: ") for line in capsys.readouterr().err.splitlines()]
    assert code == 0, notes
    parse_config(out.read_text())  # passes check-config
    return yaml.safe_load(out.read_text()), notes


def original_offer(profile_list: list[dict], groups: set[str]) -> dict[str, dict]:
    """What 2i2c's hubs offer a member of `groups` (their documented filter: allowed_groups on
    a profile, a choice or the write-in, compared case-insensitively), worked out here."""
    groups = {g.lower() for g in groups}

    def allowed(item):
        return "allowed_groups" not in item or bool({g.lower() for g in item["allowed_groups"]} & groups)

    offer = {}
    for profile in profile_list:
        if not allowed(profile):
            continue
        options = {}
        for key, option in (profile.get("profile_options") or {}).items():
            unlisted = option.get("unlisted_choice") or {}
            options[key] = (
                sorted(k for k, c in (option.get("choices") or {}).items() if allowed(c)),
                bool(unlisted.get("enabled")) and allowed(unlisted),
            )
        offer[profile["slug"]] = options
    return offer


def our_offer(config: dict, groups: set[str]) -> dict[str, dict]:
    offered = catalog.available(parse_config(yaml.safe_dump(config)).profile_list(), groups)
    return {
        p["slug"]: {
            key: (sorted(o.get("choices") or {}), bool(o["unlisted_choice"]["enabled"]))
            for key, o in (p.get("profile_options") or {}).items()
        }
        for p in offered
    }


GROUP_SETS = [set(), {"example-lab"}, {"example-lab", "example-lab:gpu-users"}, {"EXAMPLE-LAB:GPU-USERS"}]


def test_a_github_hub_in_three_layers(tmp_path, capsys):
    config, notes = converted(GITHUB, tmp_path, capsys)
    values = merge([yaml.safe_load((VALUES / f).read_text()) for f in GITHUB])
    assert config["auth"]["provider"] == "github"
    assert config["auth"]["github"]["allowed_organizations"] == ["example-lab", "example-lab:gpu-users"]
    assert config["auth"]["admin_users"] == ["alice-admin"] and config["auth"]["refresh_age"] == 0
    # the later layers win: the staging image and idle time
    assert config["culling"] == {"enabled": True, "timeout": 1800, "every": 300, "max_age": 604800}
    assert config["spawner"]["default_url"] == "/lab" and config["spawner"]["start_timeout"] == 600
    # KubeSpawner fills {username} in (a safe slug of the name): it keeps doing so from the chart's values
    assert "user_environment" not in config["spawner"]
    assert (config["spawner"]["concurrent_spawn_limit"], config["spawner"]["active_server_limit"]) == (40, 250)
    # nothing silently dropped, no secret copied
    listed = {note.split(":")[0] for note in notes}
    for path in (
        "hub.extraConfig.05-profile-groups",
        "hub.config.GitHubOAuthenticator.client_secret",
        "proxy.secretToken",
        "proxy.https.hosts",
        "singleuser.storage.type",
        "cull.removeNamedServers",
        "singleuser.extraEnv.MY_TOKEN",
        "singleuser.extraEnv.SCRATCH_BUCKET",
        "scheduling.userScheduler.enabled",
    ):
        assert path in listed, path
    assert "0123456789abcdef0123456789abcdef01234567" not in yaml.safe_dump(config)
    assert "3b1c0e3f5a7d9b2e4c6a8f0d1b3e5a7c" not in (tmp_path / "community.yaml").read_text()
    # each group set is offered what the original hub offered it
    for groups in GROUP_SETS:
        assert our_offer(config, groups) == original_offer(values["singleuser"]["profileList"], groups), groups


def plain_kubespawner(values: dict) -> Config:
    """The original hub's KubeSpawner settings, as zero-to-jupyterhub's jupyterhub_config.py
    sets them from `singleuser`."""
    single = values["singleuser"]
    c = Config()
    c.KubeSpawner.image = f"{single['image']['name']}:{single['image']['tag']}"
    c.KubeSpawner.mem_guarantee = single.get("memory", {}).get("guarantee")
    c.KubeSpawner.mem_limit = single.get("memory", {}).get("limit")
    if "cpu" in single:
        c.KubeSpawner.cpu_guarantee = float(single["cpu"]["guarantee"])
        c.KubeSpawner.cpu_limit = float(single["cpu"]["limit"])
    c.KubeSpawner.profile_list = copy.deepcopy(single["profileList"])
    return c


def user(groups):
    return SimpleNamespace(name="pat", id=1, url="/user/pat/", admin=False,
                           groups=[SimpleNamespace(name=g) for g in groups])  # fmt: skip


async def container_of(spawner, selection) -> dict:
    spawner.user_options = selection
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        data = api.sanitize_for_serialization(pod)
    container = data["spec"]["containers"][0]
    return {"image": container["image"], "resources": container.get("resources"),
            "node_selector": data["spec"].get("nodeSelector")}  # fmt: skip


@pytest.mark.parametrize("files", [GITHUB, ["basehub.yaml"]], ids=["github", "basehub"])
async def test_the_converted_hub_builds_the_same_pods(files, tmp_path, capsys):
    config, _ = converted(files, tmp_path, capsys)
    values = merge([yaml.safe_load((VALUES / f).read_text()) for f in files])
    values = values.get("jupyterhub", values)
    groups = ["example-lab", "example-lab:gpu-users"]
    ours = Config()
    ours.ProfileKubeSpawner.profile_list = parse_config(yaml.safe_dump(config)).profile_list()
    compared = 0
    for profile in catalog.available(values["singleuser"]["profileList"], groups):
        selections = [{"profile": profile["slug"]}]
        for key, option in (profile.get("profile_options") or {}).items():
            selections += [{"profile": profile["slug"], key: choice} for choice in option.get("choices") or {}]
        for selection in selections:
            theirs = await container_of(KubeSpawner(_mock=True, user=user(groups), config=plain_kubespawner(values)),
                                        dict(selection))  # fmt: skip
            mine = await container_of(ProfileKubeSpawner(_mock=True, user=user(groups), config=ours), dict(selection))
            assert mine == theirs, selection
            compared += 1
    assert compared >= 3


def test_a_basehub_hub_with_cilogon_and_its_homepage(tmp_path, capsys):
    config, notes = converted(["basehub.yaml"], tmp_path, capsys)
    hub = config["hub"]
    assert hub["name"] == "Example University" and hub["logo_url"] == "https://example.edu/logo.png"
    assert hub["funders"] == [{"name": "Example Foundation", "url": "https://example.org/foundation"}]
    assert hub["operated_by"] == {"name": "2i2c", "url": "https://2i2c.org"}
    assert config["auth"]["provider"] == "cilogon"
    assert set(config["auth"]["cilogon"]["idps"]) == {
        "http://github.com/login/oauth/authorize",
        "https://idp.example.edu/idp/shibboleth",
    }
    assert config["spawner"]["admin_volume_mounts"][0]["mountPath"] == "/home/jovyan/shared-readwrite"
    assert config["spawner"]["admin_environment"] == {"GH_SCOPED_CREDS_CLIENT_ID": "Iv1.abc"}
    listed = {note.split(":")[0] for note in notes}
    assert "jupyterhub.custom.homepage.templateVars.announcements" in listed
    assert "nfs" in listed  # another chart's values, said so


def test_a_generic_oauth_hub_whose_scopes_are_groups(tmp_path, capsys):
    config, notes = converted(["generic-oauth.yaml"], tmp_path, capsys)
    auth = config["auth"]
    assert auth["provider"] == "oidc" and auth["allowed_groups"] == ["geolab"]
    assert auth["oidc"] == {
        "discovery_url": "https://login.example.org/.well-known/openid-configuration",
        "username_claim": "sub",
        "groups_from_scopes": True,
        "scopes": ["openid", "geolab", "geolab:power"],
    }
    # mem_guarantee: zero-to-jupyterhub's default, which the original hub has too
    assert config["profiles"] == [
        {"display_name": "Default server", "slug": "default",
         "kubespawner_override": {"image": "quay.io/jupyter/base-notebook:latest", "mem_guarantee": "1G"}}
    ]  # fmt: skip
    listed = {note.split(":")[0] for note in notes}
    assert "hub.config.GenericOAuthenticator.logout_redirect_url" in listed
    assert "hub.config.GenericOAuthenticator.authorize_url" in listed  # converted, and said to check
