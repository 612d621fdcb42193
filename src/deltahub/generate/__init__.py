"""Weak-weaker preference pairs: ``generate_pairs`` (vLLM or transformers, resumable), ``load_pairs``
and the judge ``agreement`` of the size heuristic."""

from .agreement import agreement, exact_match, extract_answer, record_agreement
from .core import generate_pairs
from .filters import FilterSettings, apply_filters
from .pairs import load_pairs
from .prompts import Prompts, load_prompts
from .settings import GenerationSettings

__all__ = [
    "generate_pairs",
    "GenerationSettings",
    "FilterSettings",
    "apply_filters",
    "load_pairs",
    "load_prompts",
    "Prompts",
    "agreement",
    "record_agreement",
    "exact_match",
    "extract_answer",
]
