"""MkDocs hooks of the fastsio site (mkdocs.yml: ``hooks``), and a griffe extension.

- Every public name must be documented: each name in ``__all__`` of ``fastsio``,
  ``fastsio.exceptions`` and ``fastsio.testing``, and every public method and property of the
  classes among them, needs a docstring, and the API reference (docs/api/) must render it. A
  miss is a warning, so ``mkdocs build --strict`` fails. mkdocstrings alone renders an
  undocumented name silently and a name nobody added to the reference not at all.
- The benchmark charts are served from ``benchmarks/results/`` (``latest.png``,
  ``latency-cdf.png``: where the benchmarks write them and README.md shows them), not from
  copies under docs/.
- ``SphinxRoles`` (mkdocstrings' griffe extension, see mkdocs.yml) turns the docstrings'
  reST into what Markdown renders: ``:class:`X``` roles into code spans, ``::`` literal blocks
  into fenced code blocks.
"""

from __future__ import annotations

import ast
import logging
import pathlib
import re
import textwrap
from typing import Any

import griffe

ROOT = pathlib.Path(__file__).resolve().parents[1]
API_DIR = ROOT / "docs" / "api"
CHARTS = ("benchmarks/results/latest.png", "benchmarks/results/latency-cdf.png")
PUBLIC_MODULES = ("fastsio", "fastsio.exceptions", "fastsio.testing", "fastsio.contrib.locust")

# Public methods that still lack a docstring, in files other work is changing (the sync client
# and the simple clients are wrappers whose behaviour AsyncClient documents). They are counted
# on every build as a reminder, without failing it; an entry that has gained its docstring is
# named so it can be removed here (not an error: several branches add docstrings at once).
KNOWN_UNDOCUMENTED: frozenset[str] = frozenset()

log = logging.getLogger("mkdocs.hooks.fastsio")

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):`~?\.?([^`]+)`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def fence_literal_blocks(text: str) -> str:
    """reST ``text::`` + an indented block -> ``text:`` + a fenced block (Markdown would not
    see an indented block inside a list item as code)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line)
            i += 1
            continue
        head = line.rstrip()[:-2]
        if head.strip():
            out.append(head if head.endswith(" ") else head + ":")
        base = _indent(line)
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1
        block = textwrap.dedent("\n".join(lines[i + 1 : j])).strip("\n")
        if block:
            shell = block.lstrip().startswith(("python -m", "python ", "fastsio ", "$ "))
            out += ["", "```" + ("sh" if shell else "python"), block, "```", ""]
        i = j
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Render the reST-flavoured docstrings: roles as code spans, literal blocks as code."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(r"``\1``", obj.docstring.value)
            obj.docstring.value = fence_literal_blocks(text)


class ForwardedAttributes(griffe.Extension):
    """``name = Forwarded[T](part, doc)`` (fastsio/_forwarded.py) is rendered as the property
    it stands for: ``doc`` as its docstring, ``T`` as its type, no value."""

    def on_attribute_instance(self, *, node: Any, attr: griffe.Attribute, **kwargs: Any) -> None:
        call = getattr(node, "value", None)
        func = getattr(call, "func", None)
        if not (
            isinstance(call, ast.Call)
            and isinstance(func, ast.Subscript)
            and isinstance(func.value, ast.Name)
            and func.value.id == "Forwarded"
        ):
            return
        docs = [k.value for k in call.keywords if k.arg == "doc"] + call.args[1:2]
        if docs and isinstance(docs[0], ast.Constant) and isinstance(docs[0].value, str):
            attr.docstring = griffe.Docstring(docs[0].value, parent=attr)
        attr.annotation = ast.unparse(func.slice)
        attr.value = None
        attr.labels -= {"class-attribute", "instance-attribute"}
        attr.labels.add("property")


def _documented(obj: griffe.Object | griffe.Alias) -> bool:
    return bool(obj.docstring and obj.docstring.value.strip())


def public_names() -> list[tuple[str, griffe.Object]]:
    """(path, object) of every public name: the exports and their public methods/properties."""
    package = griffe.load("fastsio", search_paths=[str(ROOT)], resolve_aliases=True)
    found: list[tuple[str, griffe.Object]] = []
    for module_path in PUBLIC_MODULES:
        module = package if module_path == "fastsio" else package[module_path[len("fastsio.") :]]
        for name in module.exports or ():
            target = module[str(name)]
            target = target.final_target if target.is_alias else target
            if target.is_module:  # fastsio.exceptions: checked as a module of its own
                continue
            found.append((f"{module_path}.{name}", target))
            if target.is_class:
                for member_name, member in target.all_members.items():
                    if member_name.startswith("_") or member.is_attribute:
                        continue
                    member = member.final_target if member.is_alias else member
                    found.append((f"{module_path}.{name}.{member_name}", member))
    return found


def check_public_names() -> None:
    undocumented = []
    known = 0
    for path, obj in public_names():
        if path in KNOWN_UNDOCUMENTED:
            if _documented(obj):
                log.info(f"{path} has a docstring now: remove it from KNOWN_UNDOCUMENTED")
            else:
                known += 1
            continue
        if not _documented(obj):
            undocumented.append(path)
    for path in undocumented:
        log.warning(f"public name without a docstring: {path}")
    if known:
        log.info(
            f"{known} public methods still lack a docstring (KNOWN_UNDOCUMENTED, docs/hooks.py)"
        )


def check_reference() -> None:
    """Each export has a ``::: name`` in docs/api/ (its module's, or its own)."""
    directives = set()
    for page in API_DIR.glob("*.md"):
        directives |= set(re.findall(r"^::: *([\w.]+)", page.read_text(), re.MULTILINE))
    package = griffe.load("fastsio", search_paths=[str(ROOT)])
    for module_path in PUBLIC_MODULES:
        if module_path in directives and module_path != "fastsio":
            continue  # the whole module is rendered, with every member of its __all__
        module = package if module_path == "fastsio" else package[module_path[len("fastsio.") :]]
        for export in module.exports or ():
            name = str(export)
            path = f"{module_path}.{name}"
            if name == "__version__" or f"fastsio.{name}" in directives or path in directives:
                continue
            log.warning(f"public name {path} is not in the API reference (docs/api/)")


def on_pre_build(config: Any) -> None:
    check_public_names()
    check_reference()


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for chart in CHARTS:
        files.append(
            File(
                chart,
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
