"""Write the API reference while MkDocs builds the site: one page per module of the package,
and their navigation (run by the mkdocs-gen-files plugin; see mkdocs.yml).

The pages follow the modules griffe finds in the source tree, so a module added, moved or
removed shows up in the reference without editing any list here. A module's page documents
what the module itself defines and links each name it re-exports (a package's, AllenAct's
names in ``experiment_utils``) to the page of the module that defines it, so every object is
documented once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import griffe
import mkdocs_gen_files
from mkdocs_gen_files.nav import Nav

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hydra_pipeline", "hydra_plugins.hydra_pipeline_searchpath")
WITHOUT_PAGE = {"__main__", "conf"}
"""Modules with no API: ``python -m`` entry points, and the package of YAML presets."""


def modules(module: griffe.Module) -> Iterator[griffe.Module]:
    """``module`` and its submodules, depth first, in name order."""
    yield module
    for name, submodule in sorted(module.modules.items()):
        if name not in WITHOUT_PAGE:
            yield from modules(submodule)


def page_text(module: griffe.Module) -> str:
    """The Markdown of ``module``'s page: its documentation, and each name it re-exports (in
    ``__all__``, defined elsewhere) linked to where that name is documented."""
    if module.exports is None:  # no __all__: griffe's own choice of public members
        return f"::: {module.path}\n"
    defined = [
        name
        for name, member in module.members.items()
        if not member.is_alias and not name.startswith("_") and name not in module.modules
    ]
    members = f"[{', '.join(defined)}]" if defined else "false"
    text = f"::: {module.path}\n    options:\n      members: {members}\n"
    names = [str(name) for name in module.exports]  # a name, or an expression naming one
    exported = [module.members[name] for name in names if name in module.members]
    aliases = [member for member in exported if isinstance(member, griffe.Alias)]
    if aliases:
        text += "\n## Names it exports\n\n"
        for alias in aliases:
            text += f"- [`{alias.name}`][{alias.final_target.path}]\n"
    return text


def write_pages() -> None:
    """A page ``reference/<module path>.md`` per module (``.../index.md`` for a package, the
    index of its section), and ``reference/SUMMARY.md`` listing them for mkdocs-literate-nav."""
    navigation = Nav()  # type: ignore[no-untyped-call]
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    for package in PACKAGES:
        root = loader.load(package)
        if not isinstance(root, griffe.Module):
            raise TypeError(f"{package} is not a package that griffe can read")
        for module in modules(root):
            parts = tuple(module.path.split("."))
            page = (
                Path(*parts, "index.md")
                if module.is_init_module
                else Path(*parts).with_suffix(".md")
            )
            navigation[parts] = page.as_posix()
            with mkdocs_gen_files.open(Path("reference", page), "w") as file:
                file.write(page_text(module))
    with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as file:
        file.writelines(navigation.build_literate_nav())


write_pages()
