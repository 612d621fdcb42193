"""The toy world: synthetic skills with exact answers and a ladder of tiny models trained on the CPU.

It is deltahub's embedded default for models, so the whole loop (pairs, deltas, merges,
evaluation) runs anywhere in minutes and shows what the method does.
"""

from deltahub.toy.evaluate import evaluate, evaluate_model, greedy_answers, load_model
from deltahub.toy.prompts import prompt_rows, write_prompts
from deltahub.toy.skills import SKILLS, Skill, get_skill, sample, split_of
from deltahub.toy.world import FamilySpec, ModelSpec, ToyWorldConfig, World, build_world, load_world, preset, world_dir

__all__ = [
    "SKILLS",
    "FamilySpec",
    "ModelSpec",
    "Skill",
    "ToyWorldConfig",
    "World",
    "build_world",
    "evaluate",
    "evaluate_model",
    "get_skill",
    "greedy_answers",
    "load_model",
    "load_world",
    "preset",
    "prompt_rows",
    "sample",
    "split_of",
    "world_dir",
    "write_prompts",
]
