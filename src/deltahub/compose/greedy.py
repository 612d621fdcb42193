"""Greedy forward selection of deltas by validation score (PDA §6.1: some deltas hurt when aggregated).

Start from the student alone; at each step try adding every remaining delta to the selected set, merge,
score on validation, and keep the one that raises the score most. Stop when no delta raises it by more
than ``min_gain`` or when ``max_k`` are selected. A delta left out gets the reason: it hurt alone, or it
never improved the merge it was tried in.

A delta that lowers the student's score on its own is not tried in merges unless ``allow_harmful``: GAM
can mask its harm among helpful deltas, and then it joins on a gain of a question or two (measured on the
toy world before #15: a delta trained on swapped pairs, 0.046 alone vs the student's 0.156, was added at
step 3 for +0.004 on 500 validation questions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Score = Callable[[tuple[int, ...]], float]  # indices of candidates (sorted) -> validation score of their merge


@dataclass
class Step:
    """One round: every remaining candidate's merged score, and the one added (None: the search stopped)."""

    tried: dict[int, float]
    added: int | None
    score: float


@dataclass
class Selection:
    base: float
    singles: dict[int, float]
    steps: list[Step] = field(default_factory=list)
    selected: list[int] = field(default_factory=list)  # in the order they were added
    stopped: str = ""

    @property
    def score(self) -> float:
        """The validation score of the final merge (the student's when nothing was selected)."""
        return self.steps[-1].score if self.steps else self.base

    def reason_left_out(self, i: int) -> str | None:
        """Why candidate ``i`` is not in the merge (None when it is)."""
        if i in self.selected:
            return None
        alone = self.singles[i]
        if alone < self.base:
            return f"hurts alone: {alone:.4f} < student {self.base:.4f}"
        tried = [(n, s.tried[i]) for n, s in enumerate(self.steps, 1) if i in s.tried]
        last_step, last = tried[-1]
        before = self.steps[last_step - 2].score if last_step > 1 else self.base
        if last_step == len(self.steps) and self.steps[-1].added is None:
            return f"did not improve the merge at step {last_step}: {last:.4f} vs {before:.4f}"
        return f"not better than the delta chosen at step {last_step}: {last:.4f}"


def greedy_select(
    n: int,
    score: Score,
    max_k: int | None = None,
    min_gain: float = 0.0,
    allow_harmful: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> Selection:
    """Select among ``n`` candidates; ``score(indices)`` scores the merge of those candidates (``()``: the
    student alone). Each set is scored once; ties go to the earlier candidate. ``progress(step, added, score)``
    is called after each addition."""
    max_k = n if max_k is None else min(max_k, n)
    base = score(())
    singles = {i: score((i,)) for i in range(n)}
    sel = Selection(base=base, singles=singles)
    pool = [i for i in range(n) if allow_harmful or singles[i] >= base]
    current = base
    while len(sel.selected) < max_k:
        remaining = [i for i in pool if i not in sel.selected]
        if not remaining:
            sel.stopped = (
                "every candidate that does not hurt alone was selected"
                if sel.selected
                else "every candidate hurts the student alone"
            )
            break
        tried = {i: singles[i] if not sel.selected else score(tuple(sorted((*sel.selected, i)))) for i in remaining}
        best = max(remaining, key=lambda i: (tried[i], -i))
        if tried[best] - current <= min_gain:
            sel.steps.append(Step(tried, None, current))
            sel.stopped = (
                f"no remaining delta improves the validation score by more than {min_gain:g} "
                f"(best: {tried[best]:.4f} vs {current:.4f})"
            )
            break
        sel.selected.append(best)
        current = tried[best]
        sel.steps.append(Step(tried, best, current))
        if progress:
            progress(len(sel.selected), best, current)
    else:
        sel.stopped = f"reached --max {max_k}" if max_k < n else "every candidate was selected"
    return sel
