"""The vLLM backend gives the transformers backend's schema (and, greedy, its answers).

Runs where vLLM is importable (a GPU machine, or the CPU build via scripts/test-vllm.sh); skipped otherwise.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("vllm")
pytestmark = [pytest.mark.vllm, pytest.mark.slow]

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

from deltahub.generate import GenerationSettings, generate_pairs, load_pairs  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from deltahub.tiny import build_tiny_model

    d = tmp_path_factory.mktemp("vllm")
    weak = build_tiny_model(d / "weak", hidden_size=128, num_layers=2, seed=1)
    weaker = build_tiny_model(d / "weaker", hidden_size=64, num_layers=1, seed=2)
    prompts = d / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"question": f"what is {i} + {i}?", "answer": str(2 * i)}) + "\n" for i in range(6))
    )
    return d, str(weak), str(weaker), str(prompts)


def test_vllm_schema_and_greedy_answers_match_transformers(world):
    d, weak, weaker, prompts = world
    s = GenerationSettings(max_new_tokens=8, batch_size=3, dtype="float32")
    v = load_pairs(generate_pairs(weak, weaker, prompts, d / "v", s, backend="vllm", progress=False))
    t = load_pairs(generate_pairs(weak, weaker, prompts, d / "t", s, backend="transformers", progress=False))
    assert v.column_names == t.column_names
    assert json.loads((d / "v" / "deltahub.json").read_text())["generation"]["backend"] == "vllm"
    assert list(v["chosen_tokens"]) == list(t["chosen_tokens"])
    same = sum(a == b for a, b in zip(v["chosen"], t["chosen"], strict=True))
    # fp32 kernels differ; near-tied argmaxes of a random model may flip, but most greedy answers agree
    assert same >= len(v) * 2 // 3, (list(v["chosen"]), list(t["chosen"]))


def test_vllm_seeded_sampling_is_reproducible(world):
    d, weak, weaker, prompts = world
    s = GenerationSettings(temperature=1.0, top_p=0.9, max_new_tokens=8, seed=3, batch_size=2, dtype="float32")
    a = load_pairs(generate_pairs(weak, weaker, prompts, d / "a", s, backend="vllm", progress=False))
    b = load_pairs(
        generate_pairs(
            weak,
            weaker,
            prompts,
            d / "b",
            GenerationSettings(**{**s.__dict__, "batch_size": 6}),
            backend="vllm",
            progress=False,
        )
    )
    assert a.to_list() == b.to_list(), "per-request seeds: batching does not change the pairs"
