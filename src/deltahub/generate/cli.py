"""``deltahub generate`` and ``deltahub agreement``: thin click layers over the library."""

from __future__ import annotations

import json

import click

from .filters import NAMED_FORMATS


@click.command("generate")
@click.option("--chosen", required=True, help="The weak model (bigger): local folder or repo id.")
@click.option("--rejected", required=True, help="The weaker model (smaller, same family).")
@click.option("--prompts", "prompts", required=True, help="DATASET[:SPLIT] on the registry, or a local .jsonl/.parquet file.")
@click.option("--out", required=True, type=click.Path(), help="Output pairs folder.")
@click.option("--prompt-column", default=None, help="Text column holding the user turn (default: guessed).")
@click.option("--messages-column", default=None, help="Column of chat turns [{role, content}].")
@click.option("--split", default=None, help="Dataset split (also DATASET:SPLIT).")
@click.option("--limit", type=int, default=None, help="Use only the first N prompts.")
@click.option("--system-prompt", default=None, help="System turn prepended to every conversation.")
@click.option("--enable-thinking/--disable-thinking", default=None, help="Passed to Qwen3-style chat templates.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True, help="Prompts per generate call (= per shard).")
@click.option("--backend", type=click.Choice(["auto", "transformers", "vllm"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto", show_default=True)
@click.option("--tensor-parallel-size", type=int, default=1, show_default=True, help="vLLM only.")
@click.option("--data-parallel-size", type=int, default=1, show_default=True, help="vLLM only.")
@click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True, help="vLLM only.")
@click.option("--max-model-len", type=int, default=None, help="vLLM only.")
@click.option("--drop-identical", is_flag=True, help="Drop pairs whose answers are identical.")
@click.option("--drop-empty", is_flag=True, help="Drop pairs with an empty chosen answer.")
@click.option("--drop-truncated", is_flag=True, help="Drop pairs whose chosen answer hit --max-new-tokens.")
@click.option("--format", "format_check", default=None,
              help=f"Chosen-side format check: {', '.join(sorted(NAMED_FORMATS))}, json, or a regex.")
@click.option("--max-length-ratio", type=float, default=None, help="Drop pairs whose lengths differ by more than this factor.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
@click.option("--restart", is_flag=True, help="Discard an unfinished run instead of resuming it.")
@click.option("--no-progress", is_flag=True)
def generate_command(chosen, rejected, prompts, out, prompt_column, messages_column, split, limit, system_prompt,
                     enable_thinking, temperature, top_p, max_new_tokens, seed, batch_size, backend, dtype,
                     tensor_parallel_size, data_parallel_size, gpu_memory_utilization, max_model_len, drop_identical,
                     drop_empty, drop_truncated, format_check, max_length_ratio, overwrite, restart, no_progress):
    """Answer the same prompts with a weak (chosen) and a weaker (rejected) model; write TRL preference pairs.

    An interrupted run resumes when started again with the same arguments.
    """
    from .core import generate_pairs
    from .filters import FilterSettings
    from .settings import GenerationSettings

    settings = GenerationSettings(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                                  batch_size=batch_size, system_prompt=system_prompt, enable_thinking=enable_thinking,
                                  dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                                  data_parallel_size=data_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
                                  max_model_len=max_model_len)
    filters = FilterSettings(identical=drop_identical, empty=drop_empty, truncated=drop_truncated, format=format_check,
                             max_length_ratio=max_length_ratio)
    path = generate_pairs(chosen, rejected, prompts, out, settings, filters, backend, prompt_column=prompt_column,
                          messages_column=messages_column, split=split, limit=limit, overwrite=overwrite,
                          restart=restart, progress=not no_progress)
    prov = json.loads((path / "deltahub.json").read_text())
    removed = ", ".join(f"{k}={v}" for k, v in prov["filters"].items()) or "no filters"
    click.echo(f"wrote {prov['pairs']} pairs to {path} ({removed})")


@click.command("agreement")
@click.argument("pairs")
@click.option("--judge", default="exact-match", show_default=True,
              help="exact-match (reference answer, GSM8K '####' aware), contains, or module:function(text, row)->score.")
@click.option("--answer-column", default="answer", show_default=True, help="Reference-answer column.")
@click.option("--no-record", is_flag=True, help="Do not write the result into the folder's deltahub.json and card.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def agreement_command(pairs, judge, answer_column, no_record, as_json):
    """How often the size heuristic (chosen = bigger model) picks the answer the judge prefers."""
    from pathlib import Path

    from .agreement import agreement, record_agreement

    result = agreement(pairs, judge=judge, answer_column=answer_column)
    if not no_record and Path(pairs).is_dir():
        record_agreement(pairs, result)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    pct = "n/a (no decisive pairs)" if result["agreement"] is None else f"{result['agreement']:.1%}"
    click.echo(f"agreement with {judge}: {pct} of {result['decisive']} decisive pairs "
               f"({result['chosen_better']} chosen better, {result['rejected_better']} rejected better, "
               f"{result['ties']} ties of {result['pairs']}); chosen score {result['chosen_score']:.3f}, "
               f"rejected score {result['rejected_score']:.3f}")
