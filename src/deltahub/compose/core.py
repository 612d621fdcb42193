"""``compose``: choose deltas greedily by validation score, then merge the chosen set.

Every evaluation (the student alone, with one delta, with a merged set) is cached in the work folder
under a key made of the content hashes of the deltas involved, the base, the method and its parameters
and the validation set, so a killed or repeated compose re-scores nothing it already scored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_dir, atomic_write_text, check_output_dir
from ..errors import DeltahubError, InputError
from ..share.mergekit_config import MERGEKIT_CONFIG
from .candidates import Candidate, dedupe, resolve
from .greedy import Selection, greedy_select
from .settings import ComposeSettings
from .validation import Half, ValidationSet, mean

CACHE_VERSION = 3  # 2: toy outcomes per question (paired comparisons); 3: the toy world's teacher-forced exact match
TRACE = "compose.json"
PLOT = "compose.png"


@dataclass
class ComposeResult:
    out: Path
    selected: list[str]  # candidate names in the order they were added
    trace: dict[str, Any]
    # toy held-out questions' outcomes (1 = right) of student/composed/merge_all/best_single, for pooling runs
    outcomes: dict[str, list[int]] = field(default_factory=dict)


def default_work() -> Path:
    home = os.environ.get("DELTAHUB_HOME") or str(Path.home() / ".cache" / "deltahub")
    return Path(home) / "compose"


def compose(
    candidates: Sequence[str | Path],
    out: str | Path,
    settings: ComposeSettings | None = None,
    *,
    params: dict[str, Any] | None = None,
    base: str | Path | None = None,
    work: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> ComposeResult:
    """Select among ``candidates`` (adapter folders or ``NS/NAME[@REV]``) by the student's validation score on
    ``settings.tasks`` and write the merge of the selected ones to ``out``: the merged adapter (or full model),
    ``gam.yml`` for mergekit-yaml, ``compose.json`` (the selection trace), ``compose.png`` and a card.

    ``settings`` (or its fields as keyword ``options``) say how to score and select; ``params`` are the merge
    method's parameters; ``base`` the student (default: the one the candidates name); ``work`` the folder of
    cached evaluations (default ``$DELTAHUB_HOME/compose``, shared: keys are content hashes).
    """
    s = settings if settings is not None else ComposeSettings(**options)
    out = check_output_dir(out, overwrite)
    say = _say if progress else (lambda _msg: None)
    method, params = s.method, dict(params or {})
    _check_method(method, params, s.full)  # a bad or unknown parameter fails now, not after the first evaluations
    trial_full = s.full
    validation = ValidationSet(list(s.tasks or []), n=s.n, limit=s.limit, include_path=s.include_path)
    work = Path(work) if work is not None else default_work()
    validation.prepare(work)

    resolved, usable = _usable(candidates, say)
    base_path, base_id = _base(usable, base)
    evaluator = _Evaluator(usable, base_path, base_id, method, params, trial_full, validation, work, say)

    sel = greedy_select(
        len(usable),
        evaluator.score,
        max_k=s.max_k,
        min_gain=s.min_gain,
        allow_harmful=s.allow_harmful,
        progress=lambda step, i, v: say(f"step {step}: + {usable[i].name} -> validation {v:.4f}"),
    )
    trace = _trace(sel, usable, resolved, validation, method, params, base_id)
    if not sel.selected:
        atomic_write_text(work / "last-trace.json", json.dumps(trace, indent=2))
        best = max(sel.singles, key=lambda i: sel.singles[i])
        raise DeltahubError(
            f"no candidate improves the student on validation (best: {usable[best].name} "
            f"{sel.singles[best]:.4f} vs student {sel.base:.4f}); nothing was written "
            f"(trace: {work / 'last-trace.json'})",
            "try other candidates, more validation questions (--n), or another merge method (--method)",
        )
    chosen = sorted(sel.selected)  # merged in candidate order, as every trial was
    outcomes: dict[str, list[int]] = {}
    if s.held_out:
        trace["held_out"], outcomes = _held_out(evaluator, sel, chosen)
    _write(out, overwrite, [usable[i] for i in chosen], method, params, base_path, base_id, s.full, trace)
    return ComposeResult(out=out, selected=[usable[i].name for i in sel.selected], trace=trace, outcomes=outcomes)


def _usable(candidates: Sequence[str | Path], say) -> tuple[list[Candidate], list[Candidate]]:
    """(every candidate resolved, once each; those that passed validation); none usable is one line."""
    resolved = dedupe([resolve(c) for c in candidates])
    usable = [c for c in resolved if c.problem is None]
    for c in resolved:
        if c.problem:
            say(f"left out {c.name}: {c.problem}")
    if not usable:
        raise InputError(
            "no usable candidate deltas" + (f" ({len(resolved)} failed validation)" if resolved else ""),
            "pass adapter folders or repo ids that pass deltahub validate",
        )
    return resolved, usable


def _check_method(method: str, params: dict[str, Any], full: bool) -> None:
    """The method's parameters are valid, any that names an input holds for every set compose tries (the
    first of each, or the method's own choice), and the result fits the output kind."""
    from ..merge.protocol import Inputs
    from ..merge.registry import get_method

    spec = get_method(method)
    try:
        spec.choices(spec.resolve(params), Inputs([("the first candidate",)], {}))
    except InputError as exc:
        raise InputError(
            f"{exc.message}: a parameter naming an input cannot hold for every set compose tries",
            "name the first candidate of each set (index 0), or let the method choose (auto)",
        ) from None
    if not (full or spec.low_rank):
        raise InputError(
            f"{method} produces a full-rank update that a LoRA adapter cannot hold exactly",
            "pass --full to compose a full model",
        )


def _say(msg: str) -> None:
    print(f"compose: {msg}", file=sys.stderr, flush=True)


def _base(usable: list[Candidate], base: str | Path | None) -> tuple[Path, str]:
    """The student every candidate was trained on: (local folder, its identity for the cache and the card)."""
    names = {c.base for c in usable}
    if base is None:
        if len(names) != 1 or None in names:
            listing = ", ".join(f"{c.name} -> {c.base}" for c in usable)
            raise InputError(
                f"the candidates name different base models ({listing})",
                "compose deltas of one student, or pass --base MODEL",
            )
        base = names.pop()
    from ..share.source import resolve_source

    s = resolve_source(base, what="base model", fix="pass the base model's folder or its repo id NS/NAME[@REV]")
    if s.repo is not None:
        return s.path, f"{s.repo}@{s.revision}"
    weights = sorted(s.path.glob("*.safetensors"))
    stamp = [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
    return s.path, f"{s.path.resolve()}#{hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]}"


class _Evaluator:
    """Merges a set of candidates and scores the student with it; every result cached by content."""

    def __init__(
        self,
        usable: list[Candidate],
        base_path: Path,
        base_id: str,
        method: str,
        params: dict,
        full: bool,
        validation: ValidationSet,
        work: Path,
        say: Callable[[str], None],
    ):
        self.usable, self.base_path, self.base_id = usable, base_path, base_id
        self.method, self.params, self.full = method, params, full
        self.validation, self.cache, self.say = validation, work / "evals", say

    def key(self, ix: tuple[int, ...], half: Half) -> str:
        from ..merge import MERGE_VERSION

        data = {
            "v": CACHE_VERSION,
            "merge_version": MERGE_VERSION,
            "half": half,
            "base": self.base_id,
            "validation": self.validation.key(),
            "members": [self.usable[i].digest for i in ix],
            "method": self.method if ix else None,
            "params": self.params if ix else None,
            "full": self.full if len(ix) > 1 else None,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def results(self, ix: tuple[int, ...], half: Half = "validation") -> tuple[dict[str, float], dict[str, list[int]]]:
        """(scores per task, toy questions' outcomes) of the student with the merge of ``ix``, cached."""
        path = self.cache / f"{self.key(ix, half)}.json"
        if path.is_file():
            cached = json.loads(path.read_text(encoding="utf-8"))
            return cached["scores"], cached["correct"]
        scores, correct = self._evaluate(ix, half)
        atomic_write_text(
            path,
            json.dumps(
                {
                    "members": [self.usable[i].pinned for i in ix],
                    "half": half,
                    "method": self.method,
                    "scores": scores,
                    "correct": correct,
                }
            ),
        )
        label = " + ".join(self.usable[i].name for i in ix) or "student"
        self.say(f"{half} {mean(scores):.4f}  {label}")
        return scores, correct

    def scores(self, ix: tuple[int, ...], half: Half = "validation") -> dict[str, float]:
        return self.results(ix, half)[0]

    def mean(self, ix: tuple[int, ...], half: Half = "validation") -> float:
        return mean(self.scores(ix, half))

    def score(self, ix: tuple[int, ...]) -> float:
        return self.mean(ix, "validation")

    def _evaluate(self, ix: tuple[int, ...], half: Half) -> tuple[dict[str, float], dict[str, list[int]]]:
        if not ix:
            return self.validation.evaluate(self.base_path, None, half)
        from ..merge import merge_adapters

        with tempfile.TemporaryDirectory(prefix="deltahub-compose-trial-") as tmp:
            merged = merge_adapters(
                [self.usable[i].path for i in ix],
                Path(tmp) / "merged",
                method=self.method,
                params=dict(self.params),
                base=self.base_path if self.full else None,
                full=self.full,
                progress=False,
            )
            if self.full:
                return self.validation.evaluate(merged, None, half)
            return self.validation.evaluate(self.base_path, merged, half)


def _held_out(evaluator: _Evaluator, sel: Selection, chosen: list[int]) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The student, the result, the merge of every candidate and the best single delta (by validation) on data
    no choice saw (and their validation scores beside); on toy tasks also the result's paired differences against
    the others, question by question. Returns (the trace's ``held_out``, the toy questions' outcomes)."""
    from .stats import paired_difference

    best = max(sel.singles, key=lambda i: (sel.singles[i], -i))
    sets = {
        "student": (),
        "composed": tuple(chosen),
        "merge_all": tuple(range(len(evaluator.usable))),
        "best_single": (best,),
    }
    results = {k: evaluator.results(ix, "test") for k, ix in sets.items()}
    held: dict[str, Any] = {k: mean(scores) for k, (scores, _) in results.items()}
    held["best_single_name"] = evaluator.usable[best].name
    held["validation"] = {k: evaluator.mean(ix) for k, ix in sets.items()}
    held["scores"] = {k: scores for k, (scores, _) in results.items()}
    flat = {k: [v for task in sorted(correct) for v in correct[task]] for k, (_, correct) in results.items()}
    if flat["composed"]:
        held["paired_tasks"] = sorted(results["composed"][1])
        held["paired"] = {
            f"composed - {k}": paired_difference(flat["composed"], flat[k])
            for k in ("merge_all", "best_single", "student")
        }
    return held, flat


def _trace(
    sel: Selection,
    usable: list[Candidate],
    resolved: list[Candidate],
    validation: ValidationSet,
    method: str,
    params: dict,
    base_id: str,
) -> dict[str, Any]:
    """The selection trace: every candidate's single-delta score and fate, every step's merged score."""
    names = [c.name for c in usable]
    added_at = {i: n for n, i in enumerate(sel.selected, 1)}
    candidates = [
        {
            "name": c.name,
            "source": c.pinned,
            "digest": c.digest,
            "single": sel.singles[i],
            "vs_student": sel.singles[i] - sel.base,
            "selected_at": added_at.get(i),
            "reason": sel.reason_left_out(i),
        }
        for i, c in enumerate(usable)
    ]
    candidates += [
        {
            "name": c.name,
            "source": c.pinned,
            "digest": c.digest,
            "single": None,
            "vs_student": None,
            "selected_at": None,
            "reason": c.problem,
        }
        for c in resolved
        if c.problem
    ]
    steps = [
        {
            "step": n,
            "tried": {names[i]: s for i, s in step.tried.items()},
            "added": names[step.added] if step.added is not None else None,
            "score": step.score,
        }
        for n, step in enumerate(sel.steps, 1)
    ]
    return {
        "validation": {"tasks": validation.tasks, "split": "validation", "n": validation.n, "limit": validation.limit},
        "base": base_id,
        "method": method,
        "parameters": params,
        "student": sel.base,
        "candidates": candidates,
        "steps": steps,
        "selected": [names[i] for i in sel.selected],
        "score": sel.score,
        "stopped": sel.stopped,
    }


def _write(
    out: Path,
    overwrite: bool,
    chosen: list[Candidate],
    method: str,
    params: dict,
    base_path: Path,
    base_id: str,
    full: bool,
    trace: dict[str, Any],
) -> None:
    """The merged output with its trace, plot, gam.yml and card, appearing at ``out`` only when complete."""
    from ..merge import merge_adapters
    from ..share.cards import write_card
    from .report import mergekit_config, plot_selection

    with atomic_dir(out, overwrite=overwrite) as tmp:
        merged = merge_adapters(
            [c.pinned for c in chosen],
            tmp / "merged",
            method=method,
            params=dict(params),
            base=base_path if full else None,
            full=full,
            progress=False,
        )
        for item in merged.iterdir():
            shutil.move(str(item), str(tmp / item.name))
        merged.rmdir()
        atomic_write_text(tmp / TRACE, json.dumps(trace, indent=2) + "\n")
        plot_selection(trace, tmp / PLOT)
        atomic_write_text(tmp / MERGEKIT_CONFIG, mergekit_config(base_id, base_path, chosen, method, params))
        block = json.loads((tmp / "deltahub.json").read_text(encoding="utf-8"))
        block["compose"] = {**trace, "mergekit": MERGEKIT_CONFIG}
        atomic_write_text(tmp / "deltahub.json", json.dumps(block, indent=2) + "\n")
        write_card(tmp, name=out.name)
