"""Compose a student from community deltas: greedy selection by validation score, then a merge.

PDA (§6.1) finds that some deltas hurt when aggregated; ``compose`` adds a delta only when it raises the
merged student's validation score, and its trace says why every other delta was left out.
"""

from .core import ComposeResult, compose
from .greedy import Selection, greedy_select
from .validation import ValidationSet, toy_half, toy_items

__all__ = ["ComposeResult", "Selection", "ValidationSet", "compose", "greedy_select", "toy_half", "toy_items"]
