"""Every command that opens the accounting database, given one it cannot open or read
(a URL of no known database, not a URL, a host that does not exist, a directory that
does not exist): one line that says why, without the URL's password, exit 1, no
traceback, and nothing written."""

import pytest

from twoi2c_hub.cli import main

PASSWORD = "pw-not-to-be-shown"
BAD_URLS = {
    "no such dialect": f"foo://u:{PASSWORD}@h/db",
    "not a URL": "not a url",
    "no such host": f"postgresql+psycopg://u:{PASSWORD}@nohost.invalid/usage",
    "no such directory": "sqlite:////nonexistent-twoi2c/dir/usage.sqlite",
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """An archive of an empty hub, for the import command."""
    work = tmp_path_factory.mktemp("cli-abuse")
    url = f"sqlite:///{work / 'usage.sqlite'}"
    assert main(["db", "upgrade", "--url", url]) == 0
    assert main(["export", "--url", url, "--out", str(work / "hub.tar")]) == 0
    return work / "hub.tar"


COMMANDS = {
    "db upgrade": lambda url, tmp, archive: ["db", "upgrade", "--url", url],
    "forget": lambda url, tmp, archive: ["forget", "bob", "--url", url],
    "export": lambda url, tmp, archive: ["export", "--url", url, "--out", str(tmp / "out.tar")],
    "import": lambda url, tmp, archive: ["import", str(archive), "--url", url],
    "import --hub-db": lambda url, tmp, archive: [
        "import",
        str(archive),
        "--url",
        f"sqlite:///{tmp / 'new.sqlite'}",
        "--hub-db",
        url,
    ],  # fmt: skip
}


@pytest.mark.parametrize("what", BAD_URLS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_out_of_reach_is_one_line_without_its_password(command, what, archive, tmp_path, capsys):
    capsys.readouterr()
    status = main(COMMANDS[command](BAD_URLS[what], tmp_path, archive))
    err = capsys.readouterr().err
    assert status == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert PASSWORD not in err
    assert not (tmp_path / "out.tar").exists()
    assert not (tmp_path / "new.sqlite").exists()  # import --hub-db: checked before any row goes in


def test_export_reads_the_config_within_the_limits_of_check_config(tmp_path, capsys):
    """`export --url --config` reads the config as it is (no checks ran): an alias bomb is refused."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    config = tmp_path / "community.yaml"
    config.write_text("\n".join(levels) + "\n")
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    assert main(["db", "upgrade", "--url", url]) == 0
    capsys.readouterr()
    status = main(["export", "--config", str(config), "--url", url, "--out", str(tmp_path / "a.tar")])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1 and str(config) in err, err
    assert not (tmp_path / "a.tar").exists()
