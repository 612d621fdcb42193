"""The prompts file a teacher family's pairs are generated from (``deltahub generate`` input).

JSONL, one object per line: ``question`` (the user turn), ``answer`` (the exact answer, carried
through to the pairs dataset for checking), ``skill``. The questions come from the hash-defined
``pairs`` split, so they never overlap the student's training data or the evaluation set.
"""

from __future__ import annotations

import json
from pathlib import Path

from deltahub.atomic import atomic_write_text
from deltahub.toy.skills import sample


def prompt_rows(skills: list[str] | str, n: int, split: str = "pairs", seed: int = 0) -> list[dict]:
    """``n`` rows per skill as dicts with question, answer and skill."""
    skills = [skills] if isinstance(skills, str) else list(skills)
    return [{"question": q, "answer": a, "skill": s} for s in skills for q, a in sample(s, split, n, seed=seed)]


def write_prompts(path: str | Path, skills: list[str] | str, n: int, split: str = "pairs", seed: int = 0) -> Path:
    """Write the prompts file atomically and return its path."""
    path = Path(path)
    rows = prompt_rows(skills, n, split, seed)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path
