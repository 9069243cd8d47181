"""The package as an operator installs it: a wheel, not the source checkout."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_installed_wheel_finds_its_templates_and_demo_config(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("twoi2c_hub-*.whl")
    # everything of the source tree is in it (setup.cfg lists the packages one by one)
    inside = set(zipfile.ZipFile(wheel).namelist())
    source = {str(f.relative_to(ROOT)) for f in (ROOT / "twoi2c_hub").rglob("*") if f.is_file()}
    source = {name for name in source if "__pycache__" not in name}
    templates = ROOT / "share" / "templates"
    shared = {f"twoi2c_hub/_share/templates/{f.relative_to(templates)}" for f in templates.rglob("*") if f.is_file()}
    examples = {f"twoi2c_hub/_share/examples/{f.name}" for f in (ROOT / "examples").iterdir() if f.is_file()}
    assert len(source) > 100 and not (source | shared | examples) - inside, (source | shared | examples) - inside
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    probe = """
import twoi2c_hub, sys
from twoi2c_hub.paths import templates_dir, examples_dir
from twoi2c_hub.cli import main
print(twoi2c_hub.__file__)
print(templates_dir())
print(sorted(p.name for p in templates_dir().iterdir()))
sys.exit(main(["check-config", str(examples_dir() / "demo-community.yaml")]))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr
    package_file, templates, names, check = result.stdout.splitlines()
    assert package_file.startswith(str(site))
    assert templates == str(site / "twoi2c_hub" / "_share" / "templates")
    assert "profile_form.html" in names and "page.html" in names
    assert check.endswith("OK (2 profiles, 6 choices)")


def test_entry_points_name_our_classes():
    from importlib.metadata import entry_points

    spawners = {e.name: e.value for e in entry_points(group="jupyterhub.spawners")}
    assert spawners["twoi2c-kube"] == "twoi2c_hub.spawners.kube:ProfileKubeSpawner"
    assert spawners["twoi2c-local"] == "twoi2c_hub.spawners.local:ProfileLocalSpawner"
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["twoi2c-hub"] == "twoi2c_hub.cli:main"
