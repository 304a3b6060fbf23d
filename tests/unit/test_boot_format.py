"""Boot files filled in by ``str.format`` (``reconciler.boot_format``) are byte for byte
what jinja2 renders, and templates the shortcut cannot follow still go through jinja2.

Each case overrides the built-in profiles with a template of its own and compiles
the example inventory (hosts with and without an image, aliases, several groups)
twice: with the shortcut and with every file rendered by jinja2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.boot_templates import BootTemplateError, BootTemplates
from reconciler.compile import CompileOptions, compile_inventory
from reconciler.inventory.load import load_inventory
from reconciler.inventory.sources import FolderSource
from reconciler.resources import DesiredState

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
EVERY_FIELD = (
    "{{ host.hostname }} {{ host.fqdn }} {{ host.mac }} {{ host.ip }} {{ host.group }} "
    "{{ host.index }} {{ host.gateway }} {{ host.netmask }} {{ http_url }} {{ domain }}"
)
IMAGE_FIELDS = (
    "{{ image.name }}@{{ image.version }} {{ image.kernel_url }} {{ image.kernel_sha256 }} "
    "{{ image.initrd_url }} {{ image.initrd_sha256 }} {{ image.rootfs_url }} "
    "{{ image.rootfs_sha256 }} {{ image.cmdline }}"
)
TEMPLATES = {
    # the shortcut applies: text, braces of other languages, comments, whitespace control
    "plain": "#!ipxe {x} {0} {}\n" + EVERY_FIELD + " ${var} }}{\n",
    "comments and trimming": "{# note #}a {{- host.hostname -}} b\n{{ host.ip }}\n\n",
    "raw block": "{% raw %}{{ host.ip }}{% endraw %} {{ host.mac }}",
    "windows line ends": "a {{ host.ip }}\r\nb {{ host.mac }}\r\n",  # jinja2 makes them \n
    # jinja2 needed: filters, tags, item lookups, globals, whole objects
    "filter": "{{ host.hostname | upper }} {{ host.index * 2 }}",
    "condition": "{% if host.index is even %}even{% else %}odd{% endif %} {{ host.ip }}",
    "item lookup": "{{ host['mac'] }} {{ image['name'] if image else 'none' }}",
    "global": "{{ range(2) | list }} {{ host.hostname }}",
    "whole object": "{{ image }}",
    "constant": "{{ '{' }} {{ host.ip }}",
}
# plain text and lookups; "whole object" too, but no format takes a whole namespace
SHORTCUT = {"plain", "comments and trimming", "raw block", "windows line ends", "whole object"}


def _compile(folder: Path | None, *, formats: bool) -> DesiredState:
    templates = BootTemplates(folder)
    templates.formats = formats
    inventory = load_inventory(FolderSource(EXAMPLE), boot_profiles=templates.profiles)
    options = CompileOptions(http_url="http://boot.example:8080")
    return compile_inventory(inventory, templates=templates, options=options)


def _profiles(folder: Path, ipxe: str, pxelinux: str) -> Path:
    for profile in ("default", "discovery", "local"):
        (folder / profile).mkdir(parents=True, exist_ok=True)
        (folder / profile / "ipxe.j2").write_text(ipxe)
        (folder / profile / "pxelinux.j2").write_text(pxelinux)
    return folder


@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_the_shortcut_gives_what_jinja2_renders(tmp_path: Path, case: str) -> None:
    folder = _profiles(tmp_path, TEMPLATES[case], "pxe {{ host.fqdn }}\n")
    taken = BootTemplates(folder).plain_parts("default", "ipxe") is not None
    assert taken == (case in SHORTCUT)
    fast, rendered = _compile(folder, formats=True), _compile(folder, formats=False)
    assert fast.boot_files == rendered.boot_files
    assert fast == rendered


def test_image_fields_with_and_without_an_image(tmp_path: Path) -> None:
    """A host without an image boots discovery, whose template must not name ``image``."""
    folder = _profiles(tmp_path, IMAGE_FIELDS + "\n", EVERY_FIELD)
    for profile in ("discovery", "local"):
        (folder / profile / "ipxe.j2").write_text(EVERY_FIELD)
    fast, rendered = _compile(folder, formats=True), _compile(folder, formats=False)
    assert fast == rendered
    contents = {f.content for f in fast.boot_files}
    assert any("compute@" in text for text in contents)


def test_the_built_in_profiles_take_the_shortcut() -> None:
    templates = BootTemplates()
    for profile in ("default", "discovery", "local", "registration"):
        for kind in ("ipxe", "pxelinux"):
            assert templates.plain_parts(profile, kind) is not None, (profile, kind)
    assert _compile(None, formats=True) == _compile(None, formats=False)


def test_a_template_naming_what_a_host_lacks_still_fails_with_the_host(tmp_path: Path) -> None:
    folder = _profiles(tmp_path, "{{ host.rack }}\n", "{{ image.name }}\n")
    for formats in (True, False):
        with pytest.raises(BootTemplateError, match=r"fails for host \w+: .*'rack'"):
            _compile(folder, formats=formats)


def test_a_template_jinja2_cannot_parse_is_reported_as_before(tmp_path: Path) -> None:
    folder = _profiles(tmp_path, "{{ host.ip \n", "{% if %}\n")
    for formats in (True, False):
        with pytest.raises(BootTemplateError, match=r"fails for host \w+: .*; fix the template"):
            _compile(folder, formats=formats)


def test_the_shortcut_turned_off_is_off_also_for_templates_seen_before() -> None:
    """What the comparisons above and in test_compile_reuse rely on."""
    templates = BootTemplates()
    assert templates.plain_parts("default", "ipxe") is not None
    templates.formats = False
    assert templates.plain_parts("default", "ipxe") is None
