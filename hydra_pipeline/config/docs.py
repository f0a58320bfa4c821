"""Field documentation read from the schemas' docstrings (their ``Attributes:`` sections).

The ``--help`` screen shows it, and a test keeps every schema's fields documented.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

__all__ = ["field_docs"]

_ENTRY = re.compile(r"^(\w+): (.*)$")


def field_docs(schema: type[Any]) -> dict[str, str]:
    """Each field documented in the ``Attributes:`` sections of ``schema`` and its bases, with
    its text on one line."""
    docs: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        docs.update(_attributes_section(cls.__doc__ or ""))
    return docs


def _attributes_section(docstring: str) -> dict[str, str]:
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(docstring).splitlines()
    if "Attributes:" not in lines:
        return docs
    current = ""
    for line in lines[lines.index("Attributes:") + 1 :]:
        if not line.startswith("    "):
            break
        entry = _ENTRY.match(line[4:])
        if entry and not line.startswith("     "):
            current = entry.group(1)
            docs[current] = entry.group(2)
        else:
            docs[current] += " " + line.strip()
    return docs
