"""GAM and baseline merges of LoRA deltas, in LoRA factor space.

``merge_module`` merges one module's low-rank updates; ``merge_adapters`` does a whole set of
PEFT adapters module by module and writes a merged adapter or a full model.
"""

from .adapters import LoraAdapter, load_adapter
from .core import MergeInput, merge_adapters, plan_merge
from .lowrank import LowRank, low_rank_from_dense, thin_svd
from .methods import METHODS, merge_module

# Bumped when the same inputs and parameters merge to a different result, so cached merges
# (``deltahub run``'s stage cache) are redone: 2 = issue #13 (auto no longer applies each LoRA
# scale twice to float32 adapters; one whole-merge reference on every route; the rank rule).
MERGE_VERSION = 2

__all__ = [
    "MERGE_VERSION",
    "METHODS",
    "LoraAdapter",
    "LowRank",
    "MergeInput",
    "load_adapter",
    "low_rank_from_dense",
    "merge_adapters",
    "merge_module",
    "plan_merge",
    "thin_svd",
]
