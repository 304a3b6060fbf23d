"""Boot templates render exactly as jinja2's own ``Template.render`` would.

``BootTemplates.render_file`` skips ``Template.render`` for speed (the globals
are copied once, not per host); these tests would fail if that changed any
output, lost a jinja2 global, or let a template error through unreported.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest

from reconciler.boot_templates import BootTemplateError, BootTemplates

TEMPLATE = """\
{%- macro line(word) %}[{{ word | upper }}]{% endmacro -%}
{% set ns = namespace(total=0) -%}
{% for i in range(3) %}{% set ns.total = ns.total+i %}{{ line(host.hostname) }}{{ i }} {%endfor%}
total={{ ns.total }} {{ dict(a=1) | length }} {{ cycler("x", "y").next() }}
{% set top = host.mac ~ "!" %}{{ top }} {{ image.name if image else "none" }} {{ http_url }}
"""


def _site(tmp_path: Path) -> Path:
    profile = tmp_path / "fancy"
    profile.mkdir()
    (profile / "ipxe.j2").write_text(TEMPLATE)
    (profile / "pxelinux.j2").write_text("{{ host.missing }}\n")
    return tmp_path


def _context(name: str) -> dict[str, object]:
    return {
        "host": SimpleNamespace(hostname=name, mac="52:54:00:00:00:01"),
        "image": SimpleNamespace(name="compute"),
        "http_url": "http://boot.example:8080",
    }


def test_output_matches_jinja2_render_with_globals_macros_and_set(tmp_path: Path) -> None:
    templates = BootTemplates(_site(tmp_path))
    plain = templates.environment.get_template("fancy/ipxe.j2")
    for name in ("node-001", "node-002"):  # the second call reuses the cached globals
        context = _context(name)
        rendered = templates.render("fancy", "ipxe", context)
        assert rendered == plain.render(context)
        assert f"[{name.upper()}]0 [{name.upper()}]1" in rendered
        assert "total=3 1 x" in rendered
        assert set(context) == {"host", "image", "http_url"}  # the caller's dict is untouched


def test_an_undefined_variable_is_still_reported_with_the_host(tmp_path: Path) -> None:
    templates = BootTemplates(_site(tmp_path))
    with pytest.raises(BootTemplateError, match=r"fancy/pxelinux\.j2 fails for host node-007"):
        templates.render("fancy", "pxelinux", _context("node-007"))


def test_a_missing_template_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BootTemplateError, match="has no template"):
        BootTemplates(_site(tmp_path)).render("nosuch", "ipxe", _context("n"))


def test_environment_globals_reach_the_template(tmp_path: Path) -> None:
    templates = BootTemplates(_site(tmp_path))
    assert isinstance(templates.environment, jinja2.Environment)
    (tmp_path / "g.j2").write_text(
        "{% set j = joiner('+') %}{% for i in range(3) %}{{ j() }}{{ i }}{% endfor %}"
    )
    assert templates.render_file("g.j2", {}) == "0+1+2"
