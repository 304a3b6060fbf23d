"""Boot profile templates: which files a host's MAC gets, rendered with jinja2.

A profile is a folder with ``ipxe.j2`` and ``pxelinux.j2``. The built-in profiles
ship in ``reconciler/templates/boot``; a site may add or override profiles with a
folder named in the runtime config (``[boot] templates``). Templates are loaded
once, so compiling stays free of I/O.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

    from reconciler.boot_format import TemplatePart

BUILTIN = Path(__file__).parent / "templates" / "boot"
FILE_KINDS = ("ipxe", "pxelinux")


class BootTemplateError(Exception):
    """A boot profile template is missing or fails to render for some host."""


class BootTemplates:
    """The profiles available to this site, each with one template per boot file kind."""

    def __init__(self, extra: Path | None = None) -> None:
        folders = [extra, BUILTIN] if extra is not None else [BUILTIN]
        self._folders = folders
        self.profiles = frozenset(
            entry.name
            for folder in folders
            if folder.is_dir()
            for entry in folder.iterdir()
            if all((entry / f"{kind}.j2").is_file() for kind in FILE_KINDS)
        )
        # Each template with its globals as a plain dict (see render_file).
        self._compiled: dict[str, tuple[jinja2.Template, dict[str, Any]]] = {}
        self._plain: dict[str, tuple[TemplatePart, ...] | None] = {}
        self.formats = True  # False: every host's files by jinja2 (tests compare the two)

    @cached_property
    def environment(self) -> jinja2.Environment:
        """Made on first render: ``validate`` without a config needs only the profile names."""
        import jinja2

        return jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(f) for f in self._folders]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )

    def plain_parts(self, profile: str, kind: str) -> tuple[TemplatePart, ...] | None:
        """A profile's template as literal text and ``{{ name }}`` / ``{{ name.attribute }}``
        lookups, in order; None when it does anything else (filters, tags, tests...).

        Such a template renders to its text with ``str()`` of each looked-up value
        in place (jinja2's own output without autoescape or finalize), so compile can
        fill it in per host with one ``str.format`` (see ``reconciler.boot_format``).
        """
        if not self.formats:
            return None
        name = f"{profile}/{kind}.j2"
        if name in self._plain:
            return self._plain[name]
        from reconciler.boot_format import plain_parts

        try:
            source, filename, _ = self.environment.loader.get_source(  # type: ignore[union-attr]
                self.environment, name
            )
            parts = plain_parts(self.environment.parse(source, name, filename))
        except Exception:  # rendering reports it, in jinja2's words
            parts = None
        self._plain[name] = parts
        return parts

    def render(self, profile: str, kind: str, context: dict[str, Any]) -> str:
        return self.render_file(f"{profile}/{kind}.j2", context, profile=profile)

    def render_file(self, name: str, context: dict[str, Any], *, profile: str = "") -> str:
        """Render one template by its path under the templates folders.

        What ``Template.render`` does, without copying the template's globals (a
        ChainMap, slow to copy) into a new dict on every call: they are copied
        once, and each call makes one dict of them and ``context``. At 100,000
        hosts compile renders 200,000 files, and this halves the cost of each.
        """
        import jinja2

        try:
            compiled = self._compiled.get(name)
            if compiled is None:
                template = self.environment.get_template(name)
                compiled = self._compiled[name] = (template, dict(template.globals))
            template, template_globals = compiled
            variables = jinja2.runtime.new_context(
                template.environment,
                template.name,
                template.blocks,
                {**template_globals, **context},
                shared=True,
                globals=template_globals,  # only its keys are kept: the same as the ChainMap's
            )
            try:
                return "".join(template.root_render_func(variables))
            except Exception:
                template.environment.handle_exception()  # re-raises, as render does
                raise  # not reached
        except jinja2.TemplateNotFound:
            owner = f"boot profile {profile!r}" if profile else "the boot templates"
            raise BootTemplateError(
                f"{owner} has no template {name}; add it to the templates folder"
            ) from None
        except jinja2.TemplateError as error:
            host = getattr(context.get("host"), "hostname", "?")
            raise BootTemplateError(
                f"boot template {name} fails for host {host}: {error}; fix the template"
            ) from None
