"""The hub-service framework: what it relies on in JupyterHub, and its shared rules."""

import jinja2
import jinja2.meta
import pytest

from twoi2c_hub.services.framework import BadParameter, params
from twoi2c_hub.services.framework.handlers import csv_cell, error_body
from twoi2c_hub.services.framework.pages import PAGE_NAMESPACE, Pages, hub_templates_dir


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
