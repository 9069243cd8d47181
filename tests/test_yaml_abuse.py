"""Hostile YAML for `check-config` and `convert` (issue 22, round two): whatever a file
holds, the answer is the config checked, the values converted, or a refusal on stderr
that names the problem, in bounded time and memory, with nothing written; never a
traceback.

- alias bombs ("billion laughs") and files past the limits (size, keys and values,
  aliases, nesting, key length) are refused at once, in a process held to 400 MB and 20 s;
- what is not a YAML file (a directory, /dev/zero, a pipe, bytes that are not UTF-8) is
  refused without being read to its end;
- Python tags are refused; values YAML cannot hold (a 13th month, an integer of 5,000
  digits) are refused with their line;
- values of the wrong shape anywhere `convert` reads (a profile that is a string, an
  environment that is a list, a role that is a number) are a note or a refusal naming
  their path, and generated data of any shape (hypothesis) never ends in a traceback.
"""

import os
import resource
import subprocess
import sys
import textwrap

import pytest
import yaml
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from twoi2c_hub.cli import main
from twoi2c_hub.config.yamlfile import (
    MAX_ALIASES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_KEY_CHARS,
    MAX_NODES,
    MAX_SHOWN_CHARS,
    MAX_VALUES_BYTES,
)
from twoi2c_hub.replicate.values import MAX_NOTES_LISTED

# a suite of hostile inputs, each through the importer or the CLI: `make test`, not `make check`
pytestmark = pytest.mark.slow
MEMORY_BYTES = 400 * 1024 * 1024
SECONDS = 20
# a message quoting a value is short: the longest line of a refusal or a note
MESSAGE_CHARS = 2_000


def _held_to_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def twoi2c_hub(*args) -> subprocess.CompletedProcess:
    """The real command in its own process, held to 400 MB of memory and 20 seconds."""
    return subprocess.run(
        [sys.executable, "-m", "twoi2c_hub.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=SECONDS,
        preexec_fn=_held_to_memory,
    )


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """The refusal on stderr: exit 1, no traceback, short lines, naming the problem."""
    err = result.stderr
    assert result.returncode == 1, (result.returncode, err[-2000:])
    assert "Traceback" not in err and "MemoryError" not in err, err[-2000:]
    assert all(len(line) <= MESSAGE_CHARS for line in err.splitlines()), max(map(len, err.splitlines()))
    for word in words:
        assert word in err, err[-2000:]
    return err


def laughs(levels: int = 9, width: int = 9, indent: str = "  ") -> str:
    """The anchors of a billion laughs: each level lists the one before `width` times, so
    that `*l8` stands for 9**9 (387 million) strings in a 500-byte file."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


BOMB = "*l8"
PROFILE = "profiles:\n- display_name: A\n  slug: a\n  kubespawner_override: {%s}\n"
CONFIG_BOMBS = {
    "a profile's mem_limit": PROFILE % f"mem_limit: {BOMB}",
    "a KubeSpawner list setting": PROFILE % f"lifecycle_hooks: {BOMB}",
    "a choice's override": (
        "profiles:\n- display_name: A\n  slug: a\n  profile_options:\n    image:\n      display_name: Image\n"
        f"      choices: {{c: {{display_name: C, kubespawner_override: {{mem_limit: {BOMB}}}}}}}\n"
    ),
}
VALUES_BOMBS = {
    "anchors beside the hub's values": "",
    "every server's environment": f"singleuser:\n  extraEnv: {{A: {BOMB}}}\n",
    "a profile's override": (
        f"singleuser:\n  profileList:\n  - display_name: A\n    kubespawner_override: {{tolerations: {BOMB}}}\n"
    ),
    "an authenticator's settings": (
        "hub:\n  config:\n    JupyterHub: {authenticator_class: google}\n"
        f"    GoogleOAuthenticator: {{hosted_domain: {BOMB}}}\n"
    ),
}


@pytest.mark.parametrize("where", CONFIG_BOMBS)
def test_an_alias_bomb_in_a_config_is_refused_in_bounded_time_and_memory(tmp_path, where):
    config = tmp_path / "community.yaml"
    config.write_text("x-anchors:\n" + laughs() + "hub: {name: X}\n" + CONFIG_BOMBS[where])
    err = refused(twoi2c_hub("check-config", config), str(config), "aliases counted as what they repeat")
    assert "1 error(s)" in err


@pytest.mark.parametrize("where", VALUES_BOMBS)
def test_an_alias_bomb_in_values_is_refused_and_nothing_is_written(tmp_path, where):
    values = tmp_path / "values.yaml"
    values.write_text("x-anchors:\n" + laughs() + VALUES_BOMBS[where])
    out = tmp_path / "community.yaml"
    err = refused(twoi2c_hub("convert", values, "--name", "X", "--out", out), "aliases counted as what they repeat")
    assert err.startswith(f"{values}: line ") and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_bomb_of_merge_keys_is_refused(tmp_path):
    lines = ["m0: &m0 {a: lol, b: lol}"]
    lines += [
        f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}], k{i}: [*m{i - 1}, *m{i - 1}]}}" for i in range(1, 9)
    ]
    values = tmp_path / "values.yaml"
    values.write_text("x-anchors:\n" + "".join(f"  {line}\n" for line in lines) + "singleuser: {extraEnv: *m8}\n")
    out = tmp_path / "community.yaml"
    refused(twoi2c_hub("convert", values, "--out", out), "aliases counted as what they repeat")
    assert not out.exists()


def test_an_alias_inside_what_it_names_is_refused(tmp_path, capsys):
    for text in ("a: &a [*a]\n", "hub: &h {name: X, again: *h}\n"):
        (tmp_path / "values.yaml").write_text(text)
        assert main(["convert", str(tmp_path / "values.yaml")]) == 1
        assert "is inside what it names" in capsys.readouterr().err
        assert main(["check-config", str(tmp_path / "values.yaml")]) == 1
        assert "is inside what it names" in capsys.readouterr().err


def test_too_many_aliases_are_refused(tmp_path, capsys):
    (tmp_path / "values.yaml").write_text("a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n")
    assert main(["convert", str(tmp_path / "values.yaml")]) == 1
    assert f"more than {MAX_ALIASES:,} aliases" in capsys.readouterr().err


@pytest.mark.parametrize("command, limit", [("check-config", MAX_CONFIG_BYTES), ("convert", MAX_VALUES_BYTES)])
def test_aliases_repeating_a_long_value_past_the_size_limit_are_refused(tmp_path, capsys, command, limit):
    # a file within its size, standing for one over it (its converted config would be)
    path = tmp_path / "values.yaml"
    path.write_text(f"a: &a {'x' * (limit // 2)}\nb: [*a, *a]\n")
    assert main([command, str(path)]) == 1
    assert f"more than {limit:,} characters of keys and values" in capsys.readouterr().err


@pytest.mark.parametrize("command, limit", [("check-config", MAX_CONFIG_BYTES), ("convert", MAX_VALUES_BYTES)])
def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, command, limit):
    path = tmp_path / "big.yaml"
    lines = ["hub: {name: X}"] + [f"key_{i:07d}: v" for i in range(limit // 14 + 1)]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > limit
    out = tmp_path / "out.yaml"
    args = [command, path] + (["--out", out] if command == "convert" else [])
    refused(twoi2c_hub(*args), f"larger than {limit // 2**20} MiB")
    assert not out.exists()


@pytest.mark.parametrize("command", ["check-config", "convert"])
def test_a_file_under_the_size_limit_with_too_many_keys_is_refused_at_once(tmp_path, command):
    # 900 KB of one-letter keys: 140,000 keys and values, each of which used to get a
    # "did you mean" of its own
    path = tmp_path / "dense.yaml"
    path.write_text("hub: {name: X}\n" + "".join(f"k{i}: 1\n" for i in range(70_000)))
    out = tmp_path / "out.yaml"
    args = [command, path] + (["--out", out] if command == "convert" else [])
    refused(twoi2c_hub(*args), f"more than {MAX_NODES:,} keys and values")
    assert not out.exists()


@pytest.mark.parametrize("command", ["check-config", "convert"])
def test_nesting_too_deep_is_refused(tmp_path, capsys, command):
    path = tmp_path / "deep.yaml"
    path.write_text("hub: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert main([command, str(path)]) == 1
    assert f"maps and lists nested more than {MAX_DEPTH} deep" in capsys.readouterr().err
    path.write_text(
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: &b [[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"
    )
    assert main([command, str(path)]) == 1  # deep only through the alias
    assert f"nested more than {MAX_DEPTH} deep" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check-config", "convert"])
def test_a_very_long_key_is_refused_and_never_quoted_whole(tmp_path, capsys, command):
    path = tmp_path / "long.yaml"
    # (YAML allows a key of over 1,024 characters only written as "? key")
    path.write_text("hub: {name: X}\nsingleuser:\n  ? " + "k" * 500_000 + "\n  : 1\n")
    assert main([command, str(path)]) == 1
    err = capsys.readouterr().err
    assert f"a key of 500,000 characters (at most {MAX_KEY_CHARS})" in err and len(err) < MESSAGE_CHARS


@pytest.mark.parametrize("command", ["check-config", "convert"])
def test_what_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, command):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes: opening it would wait forever
    for path in (tmp_path, "/dev/zero", fifo):
        refused(twoi2c_hub(command, path), "not a regular file")


@pytest.mark.parametrize("command", ["check-config", "convert"])
def test_bytes_that_are_not_utf8_and_characters_yaml_forbids_are_refused(tmp_path, capsys, command):
    path = tmp_path / "values.yaml"
    for data, words in (
        (b"hub: {name: \xff\xfe}\n", "not UTF-8 text (byte 0xff at offset 12)"),
        (b"hub: {name: a\x00b}\n", "character #x0000 at offset 13 is not allowed in YAML"),
    ):
        path.write_bytes(data)
        assert main([command, str(path)]) == 1
        err = capsys.readouterr().err
        assert words in err and len(err.splitlines()) <= 2, err


def test_python_tags_are_refused_and_never_run(tmp_path, capsys):
    ran = tmp_path / "ran"
    path = tmp_path / "values.yaml"
    for tag in ("!!python/object/apply:os.system", "!!python/object/apply:subprocess.call"):
        path.write_text(f"hub:\n  name: {tag} [[touch, {ran}]]\n")
        for command in ("check-config", "convert"):
            assert main([command, str(path)]) == 1
            assert "python/object/apply" in capsys.readouterr().err
    path.write_text("hub: {name: !!python/name:os.system }\n")
    assert main(["check-config", str(path)]) == 1
    assert "python/name:os.system" in capsys.readouterr().err
    assert not ran.exists()


@pytest.mark.parametrize(
    "text, words",
    [
        (
            "hub: {name: X}\nstarted: 2001-13-45\n",
            "line 2, column 10: a value that cannot be read: month must be in 1..12",
        ),
        ("hub: {name: X}\nat: 2001-12-14t21:59:43.10+99:00\n", "line 2, column 5: a value that cannot be read: offset"),
        (
            "hub: {name: X}\nn: " + "9" * 5_000 + "\n",
            "line 2, column 4: a value that cannot be read: Exceeds the limit",
        ),
        ("hub: {name: X}\n? [a, b]\n: x\n", "found unhashable key"),
    ],
    ids=["month 13", "offset of 99 hours", "5000 digits", "a list as a key"],
)
@pytest.mark.parametrize("command", ["check-config", "convert"])
def test_a_value_python_cannot_hold_is_refused_with_its_line(tmp_path, capsys, command, text, words):
    path = tmp_path / "values.yaml"
    path.write_text(text)
    out = tmp_path / "out.yaml"
    assert main([command, str(path)] + (["--out", str(out)] if command == "convert" else [])) == 1
    err = capsys.readouterr().err
    assert words in err and len(err.splitlines()) <= 2, err
    assert not out.exists()


def test_an_empty_file_a_scalar_and_a_list_are_answered_plainly(tmp_path, capsys):
    path = tmp_path / "values.yaml"
    for text, config_says, values_say in (
        ("", "hub: is required", None),
        ("# nothing\n", "hub: is required", None),
        ('"a string"\n', "the file must be a mapping of sections", "not a map of values (the file holds a str)"),
        ("- a\n- list\n", "the file must be a mapping of sections", "not a map of values (the file holds a list)"),
    ):
        path.write_text(text)
        assert main(["check-config", str(path)]) == 1
        assert config_says in capsys.readouterr().err
        out = tmp_path / "out.yaml"
        out.unlink(missing_ok=True)
        code = main(["convert", str(path), "--out", str(out)])
        err = capsys.readouterr().err
        if values_say:
            assert code == 1 and values_say in err and not out.exists()
        else:  # an empty layer is a layer: Helm reads it as no values
            assert "Traceback" not in err and out.exists()


def test_duplicate_keys_are_refused_by_check_config_and_the_last_kept_by_convert_as_helm_does(tmp_path, capsys):
    path = tmp_path / "values.yaml"
    path.write_text("hub: {name: X}\nsingleuser: {image: {name: a}}\nsingleuser: {image: {name: b}}\n")
    assert main(["check-config", str(path)]) == 1
    assert "line 3, column 1: not valid YAML: the key 'singleuser' is given twice" in capsys.readouterr().err
    main(["convert", str(path), "--out", str(tmp_path / "out.yaml")])
    profiles = yaml.safe_load((tmp_path / "out.yaml").read_text())["profiles"]
    assert profiles[0]["kubespawner_override"]["image"] == "b"


def test_keys_equal_in_python_but_not_in_yaml_are_not_duplicates(tmp_path, capsys):
    # 1 == True and 1 == 1.0 in Python; in YAML they are three keys
    path = tmp_path / "community.yaml"
    path.write_text("hub: {name: X}\nspawner:\n  user_environment: {1: a, true: b, 1.0: c}\n")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "given twice" not in err and "spawner.user_environment" in err


def test_merge_keys_are_read_by_check_config_as_by_convert(tmp_path, capsys):
    path = tmp_path / "community.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            x-small: &small {cpu_limit: 1, mem_limit: 1G}
            hub: {name: X}
            profiles:
            - display_name: Small
              slug: small
              kubespawner_override: {<<: *small, image: "quay.io/jupyter/base-notebook:2025-01-06"}
            """
        )
    )
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"{path}: x-small: is not a known setting" and "1 error(s)" in err


# --- values of the wrong shape, wherever convert reads them -------------------------------

# (values, what stderr names: the path of the values, or of the converted config)
SHAPES = {
    "profiles that are not mappings": (
        'singleuser: {profileList: ["a", 3, null]}',
        "singleuser.profileList[0]: not a profile",
    ),
    "a profile list that is a mapping": ("singleuser: {profileList: {a: 1}}", "singleuser.profileList: not a list"),
    "a profile list that is a string": ("singleuser: {profileList: abc}", "singleuser.profileList: not a list"),
    "an override that is a list": (
        "singleuser: {image: {name: x}, profileList: [{display_name: A, kubespawner_override: [1, 2]}]}",
        "profiles[0].kubespawner_override: must be a mapping",
    ),
    "options that are a string": (
        'singleuser: {profileList: [{display_name: A, profile_options: "x"}]}',
        "profiles[0].profile_options",
    ),
    "choices that are a list": (
        "singleuser: {profileList: [{display_name: A, profile_options: {o: {display_name: O, choices: [1]}}}]}",
        "profiles[0].profile_options.o.choices",
    ),
    "a choice's override that is a list": (
        "singleuser: {profileList: [{display_name: A, profile_options: {o: {display_name: O, "
        "choices: {c: {display_name: C, kubespawner_override: [1]}}}}}]}",
        "profiles[0].profile_options.o.choices.c.kubespawner_override: must be a mapping",
    ),
    "singleuser a list": ("singleuser: [1, 2]", "singleuser: "),
    "hub.config a string": ("hub: {config: abc}", "hub.config: "),
    "hub.config.KubeSpawner.environment a list": (
        "hub: {config: {KubeSpawner: {environment: [1]}}}",
        "hub.config.KubeSpawner.environment: not a mapping",
    ),
    "hub.loadRoles a list": ("hub: {loadRoles: [1, 2]}", "hub.loadRoles: not a mapping"),
    "a role that is a list": ("hub: {loadRoles: {r: [1]}}", "hub.loadRoles.r: not a role"),
    "a role's services a number": (
        "hub: {loadRoles: {r: {scopes: [x], services: 5}}}",
        "roles[0].services",
    ),
    "load_roles a number": (
        "hub: {config: {JupyterHub: {load_roles: 5}}}",
        "hub.config.JupyterHub.load_roles: not a list",
    ),
    "an image tag that is a mapping": (
        "singleuser: {image: {name: x, tag: {a: 1}}}",
        "singleuser.image.tag: not an image tag",
    ),
    "an image name that is a mapping": (
        "singleuser: {image: {name: {a: 1}, tag: x}}",
        "singleuser.image.name: not an image name",
    ),
    "extraEnv a list of strings": ("singleuser: {extraEnv: [1, a, null]}", "singleuser.extraEnv: not a mapping"),
    "extraEnv a string": ("singleuser: {extraEnv: abc}", "singleuser.extraEnv: not a mapping"),
    "extraEnv in Kubernetes' list form": (
        "singleuser: {extraEnv: [{name: A, value: b}]}",
        "singleuser.extraEnv: not a mapping",
    ),
    "keys that are numbers, null and booleans": ("singleuser: {1: a, null: b, true: c, 2.5: d}", "singleuser.None"),
    "keys that are not strings in an environment": (
        "singleuser: {extraEnv: {1: a, null: b, true: c}}",
        "spawner.user_environment",
    ),
    "allowed users that are a number": (
        "hub: {config: {JupyterHub: {authenticator_class: github}, "
        "GitHubOAuthenticator: {allowed_users: 5, admin_users: [a, 1], allowed_organizations: 3}}}",
        "auth.allowed_users",
    ),
    "an authorize_url that is a number": (
        "hub: {config: {JupyterHub: {authenticator_class: generic-oauth}, "
        "GenericOAuthenticator: {authorize_url: 5, scope: 5}}}",
        "hub.config.GenericOAuthenticator.authorize_url: not an address",
    ),
    "an authorize_url that is no URL": (
        'hub: {config: {JupyterHub: {authenticator_class: generic-oauth}, GenericOAuthenticator: {authorize_url: "http://[::1"}}}',
        "hub.config.GenericOAuthenticator.authorize_url: not an address",
    ),
    "staff ids that are a number": (
        "custom: {2i2c: {add_staff_user_ids_to_admin_users: true, add_staff_user_ids_of_type: github, "
        "staff_github_ids: 5}}",
        "custom.2i2c.staff_github_ids: not a list",
    ),
    "an admin environment that is a list": (
        "custom: {singleuserAdmin: {extraEnv: [1], extraVolumeMounts: 5}}",
        "custom.singleuserAdmin.extraEnv: not a mapping",
    ),
    "scopes that are a number": (
        "hub: {config: {Spawner: {oauth_client_allowed_scopes: 5}}}",
        "spawner.oauth_client_allowed_scopes",
    ),
    "a wrapping chart's values that are not a mapping": ("jupyterhub: {hub: {}}\nother: [1]\n3: x", "3: another chart"),
    "control characters in values and keys": (
        'singleuser: {image: {name: "a\\x01b\\u202e", tag: "\\x00"}, "\\x1b[31mA\\nauth: {}": 1}',
        "singleuser.\\x1b[31mA\\nauth: {}: not converted",
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_values_of_the_wrong_shape_are_a_note_or_a_refusal_naming_their_path(tmp_path, capsys, shape):
    text, named = SHAPES[shape]
    (tmp_path / "values.yaml").write_text(text + "\n")
    code = main(["convert", str(tmp_path / "values.yaml"), "--name", "X", "--out", str(tmp_path / "out.yaml")])
    err = capsys.readouterr().err
    assert code in (0, 1) and named in err, err
    assert "\x1b" not in err and all(len(line) <= MESSAGE_CHARS for line in err.splitlines())


def test_a_key_with_a_newline_cannot_add_a_line_to_the_converted_config(tmp_path, capsys):
    # the key is listed as not converted, in the file's header of comments: written as it
    # was, its second line became a setting of the converted config (a role for eve)
    (tmp_path / "values.yaml").write_text(
        textwrap.dedent(
            """\
            hub:
              config:
                JupyterHub: {authenticator_class: github}
                GitHubOAuthenticator: {client_id: abc, allowed_organizations: [org]}
            singleuser:
              "x\\nroles: [{name: owners, scopes: ['admin:users'], users: [eve]}]\\n#": 1
            """
        )
    )
    out = tmp_path / "community.yaml"
    assert main(["convert", str(tmp_path / "values.yaml"), "--out", str(out)]) == 0
    assert "roles" not in yaml.safe_load(out.read_text())
    assert "singleuser.x\\nroles: [{name: owners" in capsys.readouterr().err


def test_convert_lists_at_most_its_limit_of_notes_then_how_many_more(tmp_path, capsys):
    (tmp_path / "values.yaml").write_text("singleuser:\n" + "".join(f"  k{i}: 1\n" for i in range(1_500)))
    out = tmp_path / "community.yaml"
    main(["convert", str(tmp_path / "values.yaml"), "--out", str(out)])
    listed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("not converted: ")]
    assert len(listed) == MAX_NOTES_LISTED + 1 and listed[-1] == "not converted: … and 501 more paths, not listed"
    assert out.read_text().count("\n#   ") == MAX_NOTES_LISTED + 1


def test_a_value_quoted_in_a_message_is_cut(tmp_path, capsys):
    path = tmp_path / "community.yaml"
    big = "[" + ", ".join(["[" + ", ".join(["x" * 1000] * 20) + "]"] * 20) + "]"  # 400 KB
    path.write_text(
        f"hub: {{name: X}}\nprofiles:\n- {{display_name: A, slug: a, kubespawner_override: {{mem_limit: {big}}}}}\n"
    )
    assert main(["check-config", str(path)]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "mem_limit" in line]
    assert "…" in line and len(line) < len(str(path)) + 200 + MAX_SHOWN_CHARS


# --- any shape, anywhere (hypothesis) --------------------------------------------------------

SOME = fuzz(30)
NAMES = ["display_name", "slug", "kubespawner_override", "profile_options", "choices", "unlisted_choice", "image",
         "name", "tag", "environment", "mem_limit", "cpu_limit", "node_selector", "scopes", "services", "users",
         "provider", "allowed_groups", "default", "KubeSpawner", "extraEnv"]  # fmt: skip
key = st.one_of(st.sampled_from(NAMES), st.text(max_size=8), st.integers(-3, 3), st.none(), st.booleans())
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
anything = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4), max_leaves=16
)
VALUES_PLACES = [
    ("singleuser", "profileList"),
    ("singleuser", "profileList", 0),
    ("singleuser", "profileList", 0, "kubespawner_override"),
    ("singleuser", "profileList", 0, "profile_options"),
    ("singleuser", "profileList", 0, "profile_options", "image", "choices"),
    ("singleuser", "profileList", 0, "profile_options", "image", "choices", "a"),
    ("singleuser",),
    ("singleuser", "image"),
    ("singleuser", "extraEnv"),
    ("hub", "config"),
    ("hub", "config", "KubeSpawner"),
    ("hub", "config", "GitHubOAuthenticator"),
    ("hub", "loadRoles"),
    ("hub", "loadRoles", "user"),
    ("custom",),
    ("cull",),
]
CONFIG_PLACES = [
    ("profiles",),
    ("profiles", 0),
    ("profiles", 0, "kubespawner_override"),
    ("profiles", 0, "profile_options"),
    ("profiles", 0, "profile_options", "image", "choices", "a"),
    ("auth",),
    ("spawner",),
    ("hub",),
    ("roles",),
    ("budgets",),
    ("instance_types",),
]


def _values() -> dict:
    profile = {
        "display_name": "A",
        "slug": "a",
        "kubespawner_override": {"mem_limit": "1G"},
        "profile_options": {"image": {"display_name": "Image", "choices": {"a": {"display_name": "A"}}}},
    }
    return {
        "hub": {
            "config": {
                "JupyterHub": {"authenticator_class": "github"},
                "GitHubOAuthenticator": {"allowed_users": ["a"]},
            },
            "loadRoles": {"user": {"scopes": ["self"]}},
        },
        "singleuser": {"image": {"name": "x", "tag": "1"}, "profileList": [profile], "extraEnv": {"A": "b"}},
    }


def _config() -> dict:
    values = _values()
    return {"hub": {"name": "X"}, "profiles": values["singleuser"]["profileList"]}


def _placed(data: dict, path: tuple, value) -> dict:
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


@SOME
@given(anything, st.sampled_from(VALUES_PLACES), st.sampled_from(CONFIG_PLACES))
def test_any_data_anywhere_is_checked_converted_or_refused_never_a_traceback(tmp_path, capsys, value, where, place):
    values, config = tmp_path / "values.yaml", tmp_path / "community.yaml"
    values.write_text(yaml.safe_dump(_placed(_values(), where, value)))
    config.write_text(yaml.safe_dump(_placed(_config(), place, value)))
    for args in (["check-config", str(config)], ["convert", str(values), "--out", str(tmp_path / "out.yaml")]):
        code = main(args)  # an exception would end the test here, with its traceback
        err = capsys.readouterr().err
        assert code in (0, 1) and (code == 0 or err.strip()), (args, err)
