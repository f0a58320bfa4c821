"""A griffe extension: the docstrings' Sphinx roles (``:class:`Name```, ``:meth:`~a.b.c```)
become cross-references of the API reference, so they render as links and the strict build
fails on one that names no documented object."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|mod|func|meth|data|attr|exc|obj):`(~?)([\w.\s]+)`")
"""A role: its kind, an optional ``~`` (show the last part only) and the dotted name (which a
docstring may break across lines)."""


def as_cross_reference(role: re.Match[str]) -> str:
    """The Markdown cross-reference of ``role``, resolved from the docstring's own scope."""
    short, name = role.group(1), "".join(role.group(2).split())
    text = name.rsplit(".", 1)[-1] if short else name
    return f"[`{text}`][{name}]"


class SphinxRoles(griffe.Extension):
    """Rewrites each object's docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(as_cross_reference, obj.docstring.value)
