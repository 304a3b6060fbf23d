"""A group's boot files filled in with one ``str.format`` per file instead of a jinja2 render.

At 100,000 hosts compile writes 200,000 boot files, and a jinja2 render with
the context it needs costs several microseconds each. The built-in profiles'
templates (and most a site writes) only put values into text: literal text and
``{{ name }}`` or ``{{ name.attribute }}``. For such a template, jinja2's output
(no autoescape, no finalize) is the text with ``str()`` of each value in place.
So per group and image the values every host shares are put in once, and what
differs per host (``HOST_FIELDS``) becomes a ``str.format`` field.

Anything else in a template (a filter, a tag, a test, an item lookup) or a name
this does not know (``image`` of a host without one, a jinja2 global) gives no
format, and the host's files are rendered by jinja2 as before, with its errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from jinja2 import nodes

# Literal text, or a lookup: (variable, attribute or None for the variable itself).
TemplatePart: TypeAlias = str | tuple[str, str | None]

# What differs from host to host of a group with one image, in str.format's field order.
HOST_FIELDS = ("hostname", "fqdn", "mac", "ip", "index")


def plain_parts(tree: nodes.Template) -> tuple[TemplatePart, ...] | None:
    """A parsed template as text and lookups; None when it does anything else."""
    from jinja2 import nodes

    parts: list[TemplatePart] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(child.data)
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                parts.append((child.name, None))
            elif (
                isinstance(child, nodes.Getattr)
                and child.ctx == "load"
                and isinstance(child.node, nodes.Name)
                and child.node.ctx == "load"
            ):
                parts.append((child.node.name, child.attr))
            else:
                return None
    return tuple(parts)


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def host_format(
    parts: tuple[TemplatePart, ...], shared: Mapping[tuple[str, str | None], object]
) -> str | None:
    """A ``str.format`` pattern taking ``HOST_FIELDS`` in order, with ``shared`` values put
    in; None when the template looks up anything that is neither."""
    pattern = []
    for part in parts:
        if isinstance(part, str):
            pattern.append(_literal(part))
        elif part[0] == "host" and part[1] in HOST_FIELDS:
            pattern.append(f"{{{HOST_FIELDS.index(part[1])}}}")
        elif part in shared:
            pattern.append(_literal(str(shared[part])))
        else:
            return None
    return "".join(pattern)
