"""GAM and baseline merges of LoRA deltas, in LoRA factor space.

``merge_module`` merges one module's low-rank updates; ``merge_adapters`` does a whole set of
PEFT adapters module by module and writes a merged adapter or a full model.
"""

from .adapters import LoraAdapter, load_adapter
from .core import MergeInput, merge_adapters, plan_merge
from .lowrank import LowRank, low_rank_from_dense, thin_svd
from .methods import METHODS, merge_module

__all__ = [
    "METHODS", "LoraAdapter", "LowRank", "MergeInput", "load_adapter", "low_rank_from_dense",
    "merge_adapters", "merge_module", "plan_merge", "thin_svd",
]
