"""MkDocs hook: every shipped task's data card (``jahs_gym/data/TASK/DATA_CARD.md``) becomes the page
``tasks/TASK.md``, read from the bundle at build time, so the site shows the cards that ship and no copy drifts."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

DATA = Path(__file__).resolve().parents[2] / "jahs_gym" / "data"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add one generated page per shipped data card.

    Args:
        files: The site's files so far.
        config: The MkDocs configuration.

    Returns:
        ``files`` with ``tasks/TASK.md`` added for every ``jahs_gym/data/TASK/DATA_CARD.md``.
    """
    for card in sorted(DATA.glob("*/DATA_CARD.md")):
        files.append(File.generated(config, f"tasks/{card.parent.name}.md", content=card.read_text()))
    return files
