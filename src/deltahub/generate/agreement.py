"""How often the size heuristic (chosen = the bigger model) picks the better answer under a judge.

Built-in judges score each side against a reference-answer column; a user judge is any
``module:function`` taking ``(response_text, row) -> float`` (higher is better).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def extract_answer(text: str) -> str:
    """The final answer: after GSM8K's ``####`` if present, else the stripped text."""
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    return text.strip()


def _norm_number(s: str) -> str | None:
    m = _NUMBER.findall(s)
    if not m:
        return None
    v = m[-1].replace(",", "")
    try:
        f = float(v)
    except ValueError:
        return None
    return str(int(f)) if f == int(f) else repr(f)


def exact_match(response: str, reference: str) -> bool:
    """Exact match of the extracted answers; numeric references compare the last number (GSM8K style)."""
    ref, got = extract_answer(str(reference)), extract_answer(response)
    if got == ref:
        return True
    ref_num = _norm_number(ref) if _NUMBER.fullmatch(ref.replace(" ", "")) else None
    return ref_num is not None and _norm_number(got) == ref_num


def _judge(name: str, answer_column: str) -> Callable[[str, dict], float]:
    if name == "exact-match":
        return lambda text, row: float(exact_match(text, row[answer_column]))
    if name == "contains":
        return lambda text, row: float(extract_answer(str(row[answer_column])) in text)
    if ":" in name:
        mod, _, fn = name.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as exc:
            raise InputError(
                f"cannot import judge {name!r} ({exc})", "give module:function importable from here"
            ) from exc
    raise InputError(f"unknown judge {name!r}", "use exact-match, contains, or module:function")


def _text(value) -> str:
    return value[-1]["content"] if isinstance(value, list) else str(value)


def agreement(pairs, judge: str = "exact-match", answer_column: str = "answer") -> dict:
    """Judge both sides of every pair; agreement = chosen better / pairs where the judge prefers a side."""
    from .pairs import load_pairs

    ds = pairs if hasattr(pairs, "column_names") else load_pairs(pairs)
    if judge in ("exact-match", "contains") and answer_column not in ds.column_names:
        raise InputError(
            f"pairs have no reference column {answer_column!r} (columns: {ds.column_names})",
            "pass --answer-column NAME, or a judge module:function",
        )
    score = _judge(judge, answer_column)
    better = worse = tie = 0
    chosen_total = rejected_total = 0.0
    for row in ds:
        c, r = float(score(_text(row["chosen"]), row)), float(score(_text(row["rejected"]), row))
        chosen_total, rejected_total = chosen_total + c, rejected_total + r
        better, worse, tie = better + (c > r), worse + (c < r), tie + (c == r)
    n, decisive = len(ds), better + worse
    return {
        "judge": judge,
        "pairs": n,
        "decisive": decisive,
        "chosen_better": better,
        "rejected_better": worse,
        "ties": tie,
        "agreement": better / decisive if decisive else None,
        "chosen_score": chosen_total / n if n else None,
        "rejected_score": rejected_total / n if n else None,
    }


def record_agreement(folder: str | Path, result: dict) -> Path:
    """Store the result under ``metrics.agreement`` in ``deltahub.json`` and re-render the card."""
    from .pairs import write_provenance

    folder = Path(folder)
    path = folder / "deltahub.json"
    if not path.exists():
        raise InputError(f"{folder} has no deltahub.json", "run agreement on a folder written by 'deltahub generate'")
    prov = json.loads(path.read_text())
    prov.setdefault("metrics", {})["agreement"] = result
    write_provenance(folder, prov)
    return path
