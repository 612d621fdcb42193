"""Opt-in pair filters, each counted in the card. The format check looks at the chosen side only:
recipes (e.g. agentic search) keep malformed rejected answers on purpose."""

from __future__ import annotations

import json
import re

from pydantic import field_validator

from ..settings import Settings, setting

NAMED_FORMATS = {
    "gsm8k": r"####\s*-?[\d,]*\.?\d+",
    "boxed": r"\\boxed\{",
    "answer-tag": r"<answer>.*?</answer>",
}


class FilterSettings(Settings):
    """Which filters run (all off by default), in the order they are applied."""

    identical: bool = setting(False, "Drop pairs whose answers are identical.", flag="--drop-identical")
    empty: bool = setting(False, "Drop pairs with an empty chosen answer.", flag="--drop-empty")
    truncated: bool = setting(False, "Drop pairs whose chosen answer hit max_new_tokens.", flag="--drop-truncated")
    format: str | None = setting(
        None, f"Chosen-side format check: {', '.join(sorted(NAMED_FORMATS))}, json, or a regex."
    )
    max_length_ratio: float | None = setting(
        None, "Drop pairs whose character lengths differ by more than this factor.", ge=1
    )

    @field_validator("format")
    @classmethod
    def _known_or_regex(cls, value: str | None) -> str | None:
        if value and value not in NAMED_FORMATS and value != "json":
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(
                    f"{value!r} is neither a named check ({', '.join(sorted(NAMED_FORMATS))}, json) "
                    f"nor a valid regex ({exc})"
                ) from None
        return value

    def as_dict(self) -> dict:
        return self.to_dict()


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
