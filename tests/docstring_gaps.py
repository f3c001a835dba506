"""List public objects whose docstring lacks what the API reference shows: Google-style Args, Returns, Raises.

    python tests/docstring_gaps.py                      # jahs_gym, generation, agents
    python tests/docstring_gaps.py jahs_gym/metrics.py  # some files or folders

A public object is a module, or a function, class or method whose name has no leading underscore, at module
level or in a public class (``__init__`` counts: its arguments go in its own or the class docstring's ``Args:``). What
it needs:

* a docstring;
* an ``Args:`` section naming every parameter but ``self`` and ``cls`` (``*args`` as ``*args``);
* a ``Returns:`` (or ``Yields:``) section when it returns a value (a ``return x`` or ``yield`` in its own body;
  properties describe their value in the summary line instead);
* a ``Raises:`` section naming every exception it raises itself (``raise Name(...)`` in its own body).

Exits 1 and prints one line per gap, ``path:line: object: what is missing``; exits 0 when there is none.
``tests/test_docs.py`` runs :func:`gaps` on the modules listed there as complete, so they stay complete.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jahs_gym", "generation", "agents")
SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Yields|Raises|Attributes|Examples?|Notes?):\s*$")


def sections(doc: str) -> dict[str, str]:
    """Split a Google-style docstring into its sections.

    Args:
        doc: The docstring (already dedented by ``ast.get_docstring``).

    Returns:
        Section name (``Args``, ``Returns``, ...; ``Arguments`` and ``Parameters`` count as ``Args``) -> its text.
    """
    out: dict[str, str] = {}
    current = None
    for line in doc.splitlines():
        m = SECTION.match(line)
        if m:
            current = {"Arguments": "Args", "Parameters": "Args"}.get(m.group(1), m.group(1))
            out.setdefault(current, "")
        elif current is not None:
            if line.strip() and not line.startswith((" ", "\t")):
                current = None  # back to prose
            else:
                out[current] += line + "\n"
    return out


def _own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's own body (not of functions or classes defined inside it)."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _raised(fn: ast.AST) -> set[str]:
    names = set()
    for node in _own_nodes(fn):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id[0].isupper():
                names.add(exc.id)
            elif isinstance(exc, ast.Attribute) and exc.attr[0].isupper():
                names.add(exc.attr)
    return names


def _returns_value(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for node in _own_nodes(fn):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                return True
    return False


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return [n for n in names if n not in ("self", "cls")]


def _documented(args_text: str, name: str) -> bool:
    bare = name.lstrip("*")
    return re.search(rf"^\s*\**{re.escape(bare)}\b\s*(\([^)]*\))?\s*:", args_text, re.M) is not None


def _is_property(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any((isinstance(d, ast.Name) and d.id in ("property", "cached_property")) or
               (isinstance(d, ast.Attribute) and d.attr in ("setter", "cached_property")) for d in fn.decorator_list)


def _check_function(fn: ast.FunctionDef | ast.AsyncFunctionDef, where: str,
                    params_doc: str | None = None) -> Iterator[str]:
    doc = ast.get_docstring(fn)
    params = _params(fn)
    if fn.name == "__init__":  # documented in the class docstring or its own (the reference merges them)
        if not params:
            return
        doc = "\n".join(d for d in (params_doc, doc) if d) or None
    if not doc:
        yield f"{where}: no docstring"
        return
    sec = sections(doc)
    if params and not _is_property(fn):
        missing = [p for p in params if not _documented(sec.get("Args", ""), p)]
        if missing:
            yield f"{where}: Args lacks {', '.join(missing)}"
    if fn.name != "__init__" and not _is_property(fn) and _returns_value(fn) and not ({"Returns", "Yields"} & set(sec)):
        yield f"{where}: no Returns"
    raised = _raised(fn)
    if raised:
        undocumented = sorted(e for e in raised if not re.search(rf"^\s*{e}\b", sec.get("Raises", ""), re.M))
        if undocumented:
            yield f"{where}: Raises lacks {', '.join(undocumented)}"


def gaps(path: Path) -> list[str]:
    """Every gap in one module.

    Args:
        path: A ``.py`` file.

    Returns:
        One ``path:line: object: what is missing`` string per gap, in source order.
    """
    rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    tree = ast.parse(path.read_text(), str(path))
    out = []
    if not ast.get_docstring(tree):
        out.append(f"{rel}:1: module: no docstring")
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            out += [f"{rel}:{node.lineno}: {g}" for g in _check_function(node, node.name)]
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            cdoc = ast.get_docstring(node)
            if not cdoc:
                out.append(f"{rel}:{node.lineno}: {node.name}: no docstring")
            for item in node.body:
                if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if item.name.startswith("_") and item.name != "__init__":
                    continue
                where = f"{node.name}.{item.name}"
                out += [f"{rel}:{item.lineno}: {g}" for g in _check_function(item, where, cdoc)]
    return out


def python_files(targets: list[str]) -> list[Path]:
    """The ``.py`` files of files and folders (default: the three packages).

    Args:
        targets: Paths relative to the repository root, or absolute.

    Returns:
        Sorted ``.py`` files, private modules (``_name.py``) left out but ``__init__`` and ``__main__`` kept.
    """
    files: list[Path] = []
    for t in targets or PACKAGES:
        p = Path(t) if Path(t).is_absolute() else ROOT / t
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return [f for f in files if not f.name.startswith("_") or f.name in ("__init__.py", "__main__.py")]


def main(argv: list[str] | None = None) -> int:
    """Print every gap.

    Args:
        argv: Files or folders (default: ``sys.argv[1:]``, then the three packages).

    Returns:
        0 when there is no gap, else 1.
    """
    found = [g for f in python_files(sys.argv[1:] if argv is None else argv) for g in gaps(f)]
    print("\n".join(found) if found else "no gaps")
    if found:
        print(f"{len(found)} gap(s)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
