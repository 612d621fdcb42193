"""The manual (docs/, built by mkdocs --strict as `make docs` does) and the README that leads to it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_LINES = 250


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_manual_builds_strictly(tmp_path):
    run = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()


def test_a_broken_link_or_anchor_fails_the_build(tmp_path):
    """The project's mkdocs.yml on pages written here: a missing page or anchor fails, the fixed pages pass."""
    (tmp_path / "docs").mkdir()
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().split("\nnav:")[0] + "\nnav:\n  - a.md\n  - b.md\n")
    (tmp_path / "docs" / "b.md").write_text("# B\n\n## Here\n")
    for page, wrong in (("[x](gone.md)", "gone.md"), ("[x](b.md#nowhere)", "#nowhere")):
        (tmp_path / "docs" / "a.md").write_text(f"# A\n\n{page}\n")
        run = _build(config, tmp_path / "site")
        assert run.returncode != 0 and wrong in run.stderr, run.stderr[-2000:]
    (tmp_path / "docs" / "a.md").write_text("# A\n\n[x](b.md#here)\n")
    run = _build(config, tmp_path / "site")
    assert run.returncode == 0, run.stderr[-2000:]


def _anchors(markdown: str) -> set[str]:
    """The heading anchors GitHub and mkdocs' toc give (lower case, punctuation dropped, spaces to '-')."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6} (.+)$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def test_the_readme_is_a_front_door():
    """Short, and every link it makes into the repository (files, pages and their anchors) resolves."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_LINES, len(text.splitlines())
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://|^mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(target)
    assert not broken, broken
