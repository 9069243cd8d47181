"""The hub-service framework: what it relies on in JupyterHub, and its shared rules."""

import asyncio
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import yaml
from traitlets import TraitError

from twoi2c_hub.accounting.db import make_engine
from twoi2c_hub.config.loading import ConfigError, load_config
from twoi2c_hub.paths import demo_config
from twoi2c_hub.services.cost.app import BudgetCheckService, CostService
from twoi2c_hub.services.framework import BadParameter, every, params
from twoi2c_hub.services.framework.handlers import csv_cell, error_body
from twoi2c_hub.services.framework.pages import PAGE_NAMESPACE, Pages, hub_templates_dir
from twoi2c_hub.services.usage.app import UsageService


def test_the_hubs_page_template_reads_only_the_names_services_provide():
    """Fails when a new JupyterHub's page.html reads a name our service pages do not give it."""
    source = (hub_templates_dir() / "page.html").read_text()
    read = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(source))
    assert read <= set(PAGE_NAMESPACE), f"page.html now also reads {sorted(read - set(PAGE_NAMESPACE))}"


def test_a_service_page_renders_in_the_hubs_look_with_names_escaped():
    pages = Pages(
        base_url="/",
        service_prefix="/services/usage/",
        branding={"community_name": "<b>Lab</b>", "community_funders": []},
    )
    html = pages.render(
        "usage/error.html",
        {"name": "<i>x</i>", "admin": False},
        "token",
        status_code=404,
        message="<script>no</script>",
        is_admin=False,
    )
    assert "&lt;b&gt;Lab&lt;/b&gt;" in html and "<script>no</script>" not in html
    assert "/hub/static/" in html and "/hub/logout" in html  # the hub's own page around it


@pytest.mark.parametrize(
    "parse, args, message",
    [
        (params.choice, ("aggregate", "nope", ("user", "group")), "aggregate: 'nope' is not one of user, group"),
        (params.integer, ("limit", "1 OR 1=1", 100, 1, 1000), "limit: '1 OR 1=1' is not a whole number"),
        (params.integer, ("limit", "0", 100, 1, 1000), "limit: must be between 1 and 1000"),
        (params.day, ("start", "2026-13-01"), "start: '2026-13-01' is not a date like 2026-11-01"),
        (params.text, ("user", "x" * 300), "user: must be at most 255 characters"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(parse, args, message):
    with pytest.raises(BadParameter) as refused:
        parse(*args)
    assert refused.value.status_code == 400 and refused.value.message == message
    assert refused.value.parameter == message.split(":")[0]


def test_one_error_shape():
    assert error_body(400, "window: bad", "window") == '{"code": 400, "message": "window: bad", "parameter": "window"}'
    assert error_body(403, "no") == '{"code": 403, "message": "no"}'


@pytest.mark.parametrize(
    "value, cell",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        (" =1+1", "' =1+1"),
        ("\n=1+1", "'\n=1+1"),
        ("\t=1", "'\t=1"),
        ("＝1+1", "'＝1+1"),
        ("＋1", "'＋1"),
        ("alice", "alice"),
        (1.5, "1.5"),
        (None, ""),
        ({"a": 1}, '{"a": 1}'),
    ],
)
def test_csv_cells_never_start_a_formula(value, cell):
    assert csv_cell(value) == cell


# --- a service's settings (traitlets) and its background loops ------------------------------


def community_file(tmp_path, **sections) -> str:
    """The demo community's config with `sections` replaced, written to a file."""
    config = demo_config()
    config.update(sections)
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_help_all_lists_every_setting_of_a_service_with_its_help(capsys):
    with pytest.raises(SystemExit):
        UsageService().initialize(["--help-all"])
    shown = capsys.readouterr().out
    for setting in ("db_workers", "niceness", "idle_db_work", "max_reports_per_person", "health_interval",
                    "max_body_bytes", "reconcile_interval", "retention_interval"):  # fmt: skip
        assert f"--UsageService.{setting}=" in shown
    assert "Reports one person may have running at once; more are answered 429." in shown
    with pytest.raises(SystemExit):
        CostService().initialize(["--help-all"])
    shown = capsys.readouterr().out
    assert "--CostService.rollup_interval=" in shown and "--checks-only" in shown


def test_a_setting_on_the_command_line_takes_effect(tmp_path):
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    service = UsageService()
    service.initialize(
        ["--config", community_file(tmp_path), "--database-url", url, "--UsageService.db_workers=8", "--interval=5"]
    )
    service.prepare()
    assert service.db_workers == 8 and service._pool._max_workers == 8
    assert service.reconciler.interval == 5 and service.health_details()["reconcile_interval_seconds"] == 5
    service.engine.dispose()


def test_the_cost_services_interval_comes_from_the_community_config_unless_the_command_line_says(tmp_path):
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    config = community_file(tmp_path, cost={"rollup_interval": 42})
    from_config = CostService(community_config=config, database_url=url)
    assert from_config.health_details()["rollup_interval_seconds"] == 42
    from_command_line = CostService()
    from_command_line.initialize(["--config", config, "--database-url", url, "--CostService.rollup_interval=7"])
    from_command_line.prepare()
    assert from_command_line.health_details()["rollup_interval_seconds"] == 7
    checks = BudgetCheckService(community_config=config, database_url=url)
    assert (checks.niceness, checks.idle_db_work) == (0, False)  # a spawn waits for it
    assert (from_config.niceness, from_config.idle_db_work) == (10, True)
    for service in (from_config, from_command_line, checks):
        service.engine.dispose()


def test_the_budget_checks_sqlite_connections_keep_a_small_page_cache(tmp_path):
    """A check reads a few pages of one person's sessions, which the system's file cache
    holds anyway: its connections keep 256 KiB each, so its memory stops growing early in
    a class; the reports keep SQLite's default 2 MB (benchmarks/check_memory.py)."""
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    config = community_file(tmp_path)

    def page_cache(service) -> int:
        """Its connections' cache size, the same for each (two held at once)."""
        with service.engine.connect() as first, service.engine.connect() as second:
            sizes = {c.exec_driver_sql("PRAGMA cache_size").scalar() for c in (first, second)}
        service.engine.dispose()
        (size,) = sizes
        return size

    with closing(sqlite3.connect(":memory:")) as plain:
        (sqlite_default,) = plain.execute("PRAGMA cache_size").fetchone()
    assert page_cache(CostService(community_config=config, database_url=url)) == sqlite_default
    assert page_cache(BudgetCheckService(community_config=config, database_url=url)) == -256  # KiB
    operator = BudgetCheckService()
    operator.initialize(["--config", config, "--database-url", url, "--BudgetCheckService.sqlite_page_cache_kib=1024"])
    operator.prepare()
    assert page_cache(operator) == -1024
    with pytest.raises(TraitError):  # SQLite's own negative form is not this setting's
        BudgetCheckService(community_config=config, database_url=url, sqlite_page_cache_kib=-256)
    with pytest.raises(ValueError, match="page cache"):
        make_engine(url, page_cache_kib=-256)


async def test_a_failing_background_run_is_logged_counted_and_the_loop_goes_on(caplog):
    runs, failures = [], []
    second_run = asyncio.Event()

    async def reconcile():
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the hub is away")
        second_run.set()

    loop = asyncio.ensure_future(
        every(0, reconcile, failed="Reconciliation failed", count_failure=lambda: failures.append("reconcile"))
    )
    await asyncio.wait_for(second_run.wait(), timeout=30)
    assert failures == ["reconcile"]
    assert "Reconciliation failed; will try again" in caplog.text and "RuntimeError: the hub is away" in caplog.text
    loop.cancel()  # the service's stop
    with pytest.raises(asyncio.CancelledError):
        await loop


def test_a_service_reads_the_config_without_importing_kubespawner(tmp_path):
    """The hub has checked every kubespawner_override; a service that checked them again
    would import KubeSpawner and jsonschema's format checkers: seconds of every start."""
    config = demo_config()
    config["profiles"][0]["kubespawner_override"] = {"start_timeout": "soon"}  # only KubeSpawner's checks see it
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"profiles\[0\]\.kubespawner_override\.start_timeout"):
        load_config(path)
    script = (
        "import sys\n"
        "from twoi2c_hub.services.cost.app import CostService\n"
        "from twoi2c_hub.services.usage.app import UsageService\n"
        f"url = 'sqlite:///{tmp_path / 'usage.sqlite'}'\n"
        f"for service in (UsageService, CostService):\n"
        f"    community = service(community_config={str(path)!r}, database_url=url).community\n"
        "    assert community.profiles[0].kubespawner_override == {'start_timeout': 'soon'}\n"
        "print(sorted(m for m in ('kubespawner', 'jupyterhub.app', 'rfc3987_syntax') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_the_hubs_templates_are_found_where_jupyterhub_looks_for_them():
    from jupyterhub.app import JupyterHub

    default = Path(JupyterHub.class_traits()["data_files_path"].default_value)
    assert hub_templates_dir() == default / "templates"
    assert (hub_templates_dir() / "page.html").is_file()
