"""Griffe extension for the API reference: docstrings written for Sphinx read as markdown.

A doctest block (``>>>`` lines and their output) outside an ``Examples:`` section becomes fenced ``pycon`` code
(markdown would read ``>>>`` as quotes), and a Sphinx role (``:class:``, ``:func:``, ...) becomes code around
its name.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

PROMPT = re.compile(r"^(\s*)>>> ")
ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`~?([^`]+)`")


def fence(text: str) -> str:
    """Wrap every doctest block of a docstring in a ``pycon`` fence.

    Args:
        text: The docstring.

    Returns:
        The docstring with each run of lines from a ``>>>`` line to the next blank line fenced, and Sphinx
        roles as code.
    """
    text = ROLE.sub(r"`\1`", text)
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = PROMPT.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group(1)
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        out += [f"{indent}```pycon", *lines[i:j], f"{indent}```"]
        i = j
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest blocks and unwrap the Sphinx roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite one object's docstring.

        Args:
            obj: The object griffe just loaded.
            **kwargs: What else griffe passes (unused).
        """
        if obj.docstring is not None:
            obj.docstring.value = fence(obj.docstring.value)
