"""The documentation's pages, the README first, and the code blocks they show, for the tests
that check that what the pages show works as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
"""The README and every page of the documentation site, the README first."""


def code_blocks(language: str, pages: list[Path] = PAGES) -> list[tuple[Path, str]]:
    """The fenced blocks of ``language`` in ``pages``, with the page of each, in page order."""
    return [
        (page, block)
        for page in pages
        for block in re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.DOTALL)
    ]


def name(page: Path) -> str:
    """``page``'s path from the repository's root, as a test id or message names it."""
    return page.relative_to(ROOT).as_posix()
