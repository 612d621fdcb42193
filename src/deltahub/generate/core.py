"""``generate_pairs``: the same prompts answered by a weak (chosen) and a weaker (rejected) model.

Models are loaded one at a time; each batch of answers is on disk before the next starts, so a
killed run resumes where it stopped and gives exactly the pairs of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_dir, check_output_dir
from ..distributed import Launch, current, main_first, on_main, wait_for_everyone
from .backends import make_backend, resolve_backend
from .filters import FilterSettings, apply_filters
from .pairs import write_pairs_folder
from .prompts import Prompts, load_prompts
from .settings import GenerationSettings, fingerprint
from .shards import WorkDir

ROLES = ("chosen", "rejected")


def _prompts_hash(prompts: Prompts) -> str:
    return hashlib.sha256(json.dumps(prompts.conversations, sort_keys=True).encode()).hexdigest()[:16]


def _run_role(
    work: WorkDir,
    role: str,
    model: str,
    prompts: Prompts,
    settings: GenerationSettings,
    backend_name: str,
    progress: bool,
) -> None:
    """Answer every unfinished batch of ``role``; under several processes each takes a contiguous share of
    the batches (the batches themselves do not change, so the answers are those of one process)."""
    from tqdm.auto import tqdm

    from ..distributed import broadcast, current, split

    bs = settings.batch_size
    starts = list(range(0, len(prompts), bs))
    done = work.done(role)
    pending = broadcast([s for s in starts if s not in done])  # listed before any process writes a shard
    mine = split(pending)
    if not mine:
        return
    backend = make_backend(backend_name, settings)
    info = backend.load(model)
    work.write_model(role, asdict(info))
    launch = current()
    bar = tqdm(
        total=sum(min(bs, len(prompts) - s) for s in mine),
        desc=f"{role}: {model}" + (f" (rank {launch.rank} of {launch.world_size})" if launch.distributed else ""),
        unit="prompt",
        disable=not progress or not launch.is_main,
        dynamic_ncols=True,
    )
    tokens, t0 = 0, time.perf_counter()
    try:
        for start in mine:
            batch = prompts.conversations[start : start + bs]
            responses = backend.generate(batch, start)
            work.write_shard(role, start, [dict(index=start + j, **asdict(r)) for j, r in enumerate(responses)])
            tokens += sum(r.completion_tokens for r in responses)
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - t0, 1e-9):.0f}")
    finally:
        bar.close()
        backend.close()


def _pair_rows(work: WorkDir, prompts: Prompts, settings: GenerationSettings) -> list[dict]:
    chosen, rejected = work.responses("chosen"), work.responses("rejected")
    if len(chosen) != len(prompts) or len(rejected) != len(prompts):
        raise RuntimeError(f"work folder {work.path} is incomplete: {len(chosen)}/{len(rejected)} of {len(prompts)}")
    cm, rm = work.model("chosen"), work.model("rejected")
    rows = []
    for i, (c, r) in enumerate(zip(chosen, rejected, strict=True)):
        row = {
            "prompt": prompts.conversations[i],
            "chosen": [{"role": "assistant", "content": c["text"]}],
            "rejected": [{"role": "assistant", "content": r["text"]}],
            "prompt_index": i,
            "chosen_model": cm["model"],
            "chosen_revision": cm["revision"],
            "rejected_model": rm["model"],
            "rejected_revision": rm["revision"],
            "chosen_finish_reason": c["finish_reason"],
            "rejected_finish_reason": r["finish_reason"],
            "prompt_tokens": c["prompt_tokens"],
            "chosen_tokens": c["completion_tokens"],
            "rejected_tokens": r["completion_tokens"],
            "chosen_text": c["text"],
            "rejected_text": r["text"],
        }
        if settings.enable_thinking is not None:  # TRL passes this to the template when training
            row["chat_template_kwargs"] = settings.chat_template_kwargs()
        for k, v in prompts.extras[i].items():
            row.setdefault(k, v)
        rows.append(row)
    return rows


def _provenance(
    work: WorkDir,
    prompts: Prompts,
    settings: GenerationSettings,
    backend: str,
    rows: list[dict],
    kept: int,
    removed: dict[str, int],
    launch: Launch,
) -> dict:
    """The pairs' ``deltahub.json``: both models as loaded, the prompt source, every setting, the counts."""
    return {
        "schema_version": 1,
        "kind": "dataset",
        "chosen": work.model("chosen"),
        "rejected": work.model("rejected"),
        "student": None,
        "prompts": {k: prompts.source.get(k) for k in ("dataset", "split", "revision", "column", "count")},
        "pairs": kept,
        "filters": removed,
        "generation": {**settings.provenance(backend), "launch": launch.provenance()},
        "metrics": {
            "chosen_finish_length": sum(r["chosen_finish_reason"] == "length" for r in rows),
            "rejected_finish_length": sum(r["rejected_finish_reason"] == "length" for r in rows),
            "identical": sum(r["chosen_text"].strip() == r["rejected_text"].strip() for r in rows),
            "mean_chosen_tokens": sum(r["chosen_tokens"] for r in rows) / max(len(rows), 1),
            "mean_rejected_tokens": sum(r["rejected_tokens"] for r in rows) / max(len(rows), 1),
        },
        "gain": None,
    }


def generate_pairs(
    chosen: str,
    rejected: str,
    prompts: str | Prompts,
    out: str | Path,
    settings: GenerationSettings | None = None,
    filters: FilterSettings | None = None,
    backend: str = "auto",
    *,
    prompt_column: str | None = None,
    messages_column: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    restart: bool = False,
    keep_work: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write a pairs dataset folder at ``out`` and return it (resuming an unfinished run of the same settings).

    A run that fails before any answer is on disk (e.g. a model does not load) leaves nothing behind;
    one that fails later keeps its finished batches in ``.OUT.work/`` for the rerun.

    Under ``torchrun`` / ``accelerate launch`` (transformers backend) every process calls this: each answers a
    contiguous share of the batches into the shared work folder (and resumes its own share), and the main
    process writes the pairs in prompt order. ``log`` (main process only) gets the line that says how many
    processes generate.
    """
    settings = settings or GenerationSettings()
    filters = filters or FilterSettings()
    out = check_output_dir(Path(out), overwrite)
    backend_name = resolve_backend(backend)
    launch = _launch(backend_name)
    if not isinstance(prompts, Prompts):
        source = prompts
        prompts = main_first(  # a dataset repo is pulled once, by the main process
            lambda: load_prompts(
                source,
                split=split,
                prompt_column=prompt_column,
                messages_column=messages_column,
                system_prompt=settings.system_prompt,
                limit=limit,
            )
        )
    run = {
        "chosen": chosen,
        "rejected": rejected,
        "prompts": _prompts_hash(prompts),
        "count": len(prompts),
        "backend": backend_name,
        "settings": fingerprint(settings),
    }
    if log is not None and launch.is_main and launch.launched:  # a plain run: errors stay one line
        batches = -(-len(prompts) // settings.batch_size)
        log(launch.line("generating", f"{batches} batches of up to {settings.batch_size} prompts per model"))
    # the main process checks and prepares the work folder; the others then open it as it is
    work = main_first(lambda: WorkDir(out, run, restart=restart and current().is_main))
    try:
        for role, model in zip(ROLES, (chosen, rejected), strict=True):
            _run_role(work, role, model, prompts, settings, backend_name, progress)
    except BaseException:
        if current().is_main:
            work.remove_if_unstarted()
        raise
    wait_for_everyone()  # every process's shards are on disk

    def write() -> None:
        rows = _pair_rows(work, prompts, settings)
        kept, removed = apply_filters(rows, filters)
        kept = [{k: v for k, v in row.items() if k not in ("chosen_text", "rejected_text")} for row in kept]
        provenance = _provenance(work, prompts, settings, backend_name, rows, len(kept), removed, launch)
        with atomic_dir(out, overwrite=overwrite) as tmp:
            write_pairs_folder(tmp, kept, provenance)
        if not keep_work:
            work.remove()

    on_main(write, share=False)  # the pairs, in prompt order, by the main process alone
    return out


def _launch(backend: str):
    """The processes this run divides its batches over; vLLM parallelises inside one process instead."""
    from ..distributed import LaunchError, launch_state

    launch = launch_state()
    if launch.distributed and backend == "vllm":
        raise LaunchError(
            f"the vLLM backend was launched on {launch.world_size} processes; vLLM runs its own tensor and data "
            "parallelism from one process",
            "run 'deltahub generate --backend vllm --tensor-parallel-size N / --data-parallel-size N' without "
            "torchrun or accelerate launch",
        )
    return launch
