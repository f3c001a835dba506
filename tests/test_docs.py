"""Every code block of README.md and docs/ runs, every relative link of README resolves, and the API reference
covers every module.

A fenced block is ``python`` (run as a script), ``bash`` (run with ``bash -euo pipefail``) or ``text`` (output
or a file's contents: not run). A block the line ``<!-- skip: REASON -->`` stands right before is not run; the
reason is printed in the test's skip list, so skips stay visible and few. The blocks of one page run in order in
one fresh folder (a later block may use a file an earlier one wrote), each in its own process, so every block is
what a reader can paste. A Python block's traceback names the markdown file and its line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docstring_gaps import gaps, python_files

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = ("python", "bash")
LANGUAGES = (*RUN, "text")
FENCE = re.compile(r"^(\s*)(```+)(.*)$")
SKIP = re.compile(r"^<!--\s*skip:\s*(.+?)\s*-->$")
# modules whose docstrings have Args/Returns/Raises complete (tests/docstring_gaps.py); keep them so
COMPLETE = ["jahs_gym/metrics.py", "jahs_gym/protocol.py", "jahs_gym/table.py", "jahs_gym/transforms.py",
            "jahs_gym/envs/__init__.py", "jahs_gym/envs/noise.py", "jahs_gym/envs/render.py",
            "jahs_gym/envs/xp.py", "jahs_gym/envs/codec.py", "jahs_gym/envs/tasks.py",
            "generation/__init__.py", "generation/costmodel.py", "generation/speed.py", "generation/optimum.py",
            "generation/datacard.py", "generation/labels.py", "generation/network.py", "generation/train.py",
            "generation/datasets.py", "generation/live.py", "jahs_gym/live.py", "tests/docstring_gaps.py",
            "generation/plan.py", "generation/planfile.py", "generation/run.py", "generation/merge.py",
            "generation/shards.py",
            "generation/checks.py", "generation/runlock.py", "generation/__main__.py",
            "jahs_gym/space.py", "jahs_gym/predictor.py", "jahs_gym/bundle_trust.py", "jahs_gym/bundle.py",
            "jahs_gym/benchmark.py", "jahs_gym/manifest.py", "jahs_gym/manifest_file.py", "jahs_gym/envs/rewards.py",
            "jahs_gym/envs/jahs.py", "jahs_gym/envs/build.py",
            "jahs_gym/encoding.py", "jahs_gym/configspace.py", "jahs_gym/compat.py", "jahs_gym/cli.py",
            "jahs_gym/xgb_model.py", "jahs_gym/checks.py", "jahs_gym/kernel.py", "jahs_gym/rows.py",
            "jahs_gym/naive.py", "jahs_gym/envs/info.py",
            "agents/__init__.py", "agents/arms.py", "agents/bandits.py", "agents/bench.py", "agents/common.py",
            "agents/dehb_agent.py", "agents/evolution.py", "agents/hyperband.py", "agents/objective.py",
            "agents/optuna_tpe.py", "agents/plot.py", "agents/policies.py", "agents/random_search.py",
            "agents/reinforce.py", "agents/rl.py", "agents/smac_agent.py", "agents/stats.py", "agents/train_rl.py",
            "agents/report.py",
            "docs/hooks/datacards.py",
            "docs/hooks/doctest_fences.py"]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    skip: str | None


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a markdown page, with the skip reason the line before the fence gives."""
    lines = page.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).strip()
        start = i + 1
        j = start
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        if j == len(lines):
            raise AssertionError(f"{page.name}:{i + 1}: unclosed code fence")
        code = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:j])
        prev = lines[i - 1].strip() if i > 0 else ""
        skip = SKIP.match(prev)
        out.append(Block(page, start + 1, lang, code, skip.group(1) if skip else None))
        i = j + 1
    return out


ALL = [b for p in PAGES for b in blocks(p)]


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_block_names_a_known_language() -> None:
    bad = [f"{_id(b.page)}:{b.line - 1}: ```{b.lang}" for b in ALL if b.lang not in LANGUAGES]
    assert not bad, f"code blocks must be one of {LANGUAGES} (unlabelled code would go untested): {bad}"


def test_skips_are_rare_and_give_a_reason() -> None:
    skipped = [b for b in ALL if b.skip]
    assert len(skipped) <= 6, [f"{_id(b.page)}:{b.line}: {b.skip}" for b in skipped]
    assert all(b.lang in RUN for b in skipped), "a skip marker only goes before a python or bash block"


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # python, jahs-gym of this venv
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"  # agents, generation from the checkout
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    env["JAHS_DOCS_ROOT"] = str(ROOT)  # blocks that read the repository's files (benchmarks/) find it here
    return env


def _run(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    if block.lang == "python":
        # pad with blank lines: a traceback's line numbers are the markdown file's
        script = cwd / f"{block.page.name}.L{block.line}.py"
        script.write_text("\n" * (block.line - 1) + block.code + "\n")
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", block.code]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.lang in RUN for b in blocks(p))], ids=_id)
def test_page_blocks_run(page: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    ran = 0
    for block in blocks(page):
        if block.lang not in RUN or block.skip:
            continue
        res = _run(block, tmp_path, env)
        assert res.returncode == 0, (f"{_id(page)}:{block.line}: the {block.lang} block failed "
                                     f"(exit {res.returncode})\n--- stdout\n{res.stdout[-3000:]}\n"
                                     f"--- stderr\n{res.stderr[-5000:]}")
        ran += 1
    assert ran > 0


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    missing = [t for t in local if not (ROOT / t).exists()]
    assert local and not missing, f"README links to files that do not exist: {missing}"


def test_readme_is_a_front_door() -> None:
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= 150, f"README.md has {n} lines; keep it at most 150 and move detail into docs/"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run's install and test lines are README's command 2, word for word."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().replace("pip install -q ", "pip install ")  # CI installs quietly
    m = re.search(r"^# 2\..*\n(.+)$", readme, re.M)
    assert m, "README's set-up block lost its '# 2. ...' comment line before command 2"
    parts = [p.strip() for p in m.group(1).split("&&")]
    for p in parts:
        assert p in ci, f"README command 2's step {p!r} is not in .ci/run"


def _tracked(files: list[Path]) -> list[Path]:
    """The files git tracks (all of them outside a git work tree): work in progress is not held to the rule."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", *map(str, files)], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return files
    tracked = {ROOT / p for p in out.stdout.decode().split("\0") if p}
    return [f for f in files if f in tracked]


def test_reference_covers_every_module() -> None:
    ref = "\n".join(p.read_text() for p in (ROOT / "docs" / "reference").glob("*.md"))
    shown = set(re.findall(r"^::: ([\w.]+)$", ref, re.M))
    modules = set()
    for f in _tracked(python_files([])):
        parts = f.relative_to(ROOT).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    missing = sorted(modules - shown)
    assert not missing, f"docs/reference/ has no '::: module' line for {missing}"


@pytest.mark.parametrize("path", COMPLETE)
def test_docstrings_stay_complete(path: str) -> None:
    found = gaps(ROOT / path)
    assert not found, "\n".join(found)
