"""Opt-in pair filters, each counted in the card. The format check looks at the chosen side only:
recipes (e.g. agentic search) keep malformed rejected answers on purpose."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from ..errors import InputError

NAMED_FORMATS = {
    "gsm8k": r"####\s*-?[\d,]*\.?\d+",
    "boxed": r"\\boxed\{",
    "answer-tag": r"<answer>.*?</answer>",
}


@dataclass
class FilterSettings:
    """Which filters run (all off by default), in the order they are applied."""

    identical: bool = False
    empty: bool = False
    truncated: bool = False
    format: str | None = None          # a named check (gsm8k, boxed, answer-tag, json) or a regex
    max_length_ratio: float | None = None  # drop pairs whose chosen/rejected character lengths differ by more

    def __post_init__(self):
        if self.max_length_ratio is not None and self.max_length_ratio < 1:
            raise InputError(f"--max-length-ratio {self.max_length_ratio} is below 1", "give a ratio >= 1, e.g. 4")
        if self.format and self.format not in NAMED_FORMATS and self.format != "json":
            try:
                re.compile(self.format)
            except re.error as exc:
                raise InputError(f"--format {self.format!r} is neither a named check nor a valid regex ({exc})",
                                 f"use one of {sorted(NAMED_FORMATS) + ['json']} or a Python regex") from exc

    def as_dict(self) -> dict:
        return asdict(self)


def _format_ok(text: str, check: str) -> bool:
    if check == "json":
        try:
            json.loads(text)
            return True
        except ValueError:
            return False
    return re.search(NAMED_FORMATS.get(check, check), text, flags=re.DOTALL) is not None


def _length_ok(a: str, b: str, ratio: float) -> bool:
    la, lb = max(len(a), 1), max(len(b), 1)
    return max(la, lb) / min(la, lb) <= ratio


def apply_filters(rows: list[dict], f: FilterSettings) -> tuple[list[dict], dict[str, int]]:
    """Keep the rows every enabled filter accepts; count removals per filter (the first that removes a row)."""
    checks = []
    if f.identical:
        checks.append(("identical", lambda r: r["chosen_text"].strip() != r["rejected_text"].strip()))
    if f.empty:
        checks.append(("empty_chosen", lambda r: bool(r["chosen_text"].strip())))
    if f.truncated:
        checks.append(("truncated_chosen", lambda r: r["chosen_finish_reason"] != "length"))
    if f.format:
        checks.append((f"format:{f.format}", lambda r: _format_ok(r["chosen_text"], f.format)))
    if f.max_length_ratio is not None:
        checks.append(("length_ratio", lambda r: _length_ok(r["chosen_text"], r["rejected_text"], f.max_length_ratio)))
    counts = {name: 0 for name, _ in checks}
    kept = []
    for row in rows:
        failed = next((name for name, ok in checks if not ok(row)), None)
        if failed is None:
            kept.append(row)
        else:
            counts[failed] += 1
    return kept, counts
