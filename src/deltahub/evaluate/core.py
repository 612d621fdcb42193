"""Run tasks on a model folder (optionally with a PEFT adapter) and return ``{task: {metric: value}}``.

Toy skills (``toy:srt`` or a bare skill name such as ``srt``) go through the toy world's exact-match
evaluator; every other task name goes to lm-eval, so the real benchmarks (gsm8k, minerva_math500, mmlu,
gpqa_*) and local task YAMLs (``include_path``) share one result format.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..distributed import LaunchError, broadcast, current, gather, main_first, split
from ..errors import InputError
from ..share.source import resolve_source
from ..weights import read_adapter_config

TOY_PREFIX = "toy:"
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


def is_toy_task(task: str) -> bool:
    """True for ``toy:NAME`` or a bare toy skill name."""
    from ..toy.skills import SKILLS

    return task.startswith(TOY_PREFIX) or task in SKILLS


def _toy_name(task: str) -> str:
    return task[len(TOY_PREFIX) :] if task.startswith(TOY_PREFIX) else task


def resolve_model(model: str | Path, adapter: str | Path | None = None) -> tuple[Path, Path | None]:
    """(base model folder, adapter folder or None). MODEL may itself be an adapter (its base is read from
    ``adapter_config.json``); a repo id ``NS/NAME[@REV]`` is pulled from the registry."""

    def local(spec: str | Path) -> Path:
        return resolve_source(spec, what="model", fix="pass a local folder or a repo id NS/NAME[@REV]").path

    path = local(model)
    if not path.is_dir():
        raise InputError(f"model is not a folder: {path}", "pass a Hugging Face model or PEFT adapter folder")
    adapter_config = read_adapter_config(path)
    if adapter_config is not None:
        if adapter is not None:
            raise InputError("MODEL is an adapter and --adapter was also given", "pass the base model as MODEL")
        base = adapter_config.get("base_model_name_or_path")
        if not base:
            raise InputError(
                f"{path}/adapter_config.json names no base_model_name_or_path",
                "pass the base model as MODEL and the adapter with --adapter",
            )
        return _no_pickles(local(base)), _no_pickles(path)
    if not (path / "config.json").exists():
        raise InputError(
            f"{path} has neither config.json nor adapter_config.json",
            "pass a Hugging Face model folder or a PEFT adapter folder",
        )
    return _no_pickles(path), (_no_pickles(local(adapter)) if adapter is not None else None)


def _no_pickles(folder: Path) -> Path:
    """``folder`` when its weights are safetensors; pickled-only weights would reach torch.load: refused."""
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for pattern in PICKLE_PATTERNS for p in folder.glob(pattern))
        if pickled:
            raise InputError(
                f"{folder} has only pickled weights ({pickled[0]}); pickles can run code and are refused",
                "convert the weights to safetensors (save_pretrained(..., safe_serialization=True))",
            )
    return folder


def pick_backend(backend: str = "auto") -> str:
    """``vllm`` where installed (and asked for or auto), else ``hf``."""
    if backend not in ("auto", "hf", "vllm"):
        raise InputError(f"unknown backend: {backend}", "use auto, hf or vllm")
    has_vllm = importlib.util.find_spec("vllm") is not None
    if backend == "vllm" and not has_vllm:
        raise InputError("backend vllm asked for but vllm is not installed", "use --backend hf, or install vllm")
    return "vllm" if backend == "vllm" or (backend == "auto" and has_vllm) else "hf"


def _lm_eval(
    base: Path,
    adapter: Path | None,
    tasks: list[str],
    limit: int | None,
    batch_size: int,
    backend: str,
    include_path: str | Path | None,
    chat_template: bool,
    device: str,
) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    # indexing lm-eval's own task files takes seconds (in every process of a launch; docs/measurements.md):
    # skip it when include_path holds every task
    manager = TaskManager(include_path=str(include_path), include_defaults=False) if include_path else None
    if manager is None or any(t not in manager.all_tasks for t in tasks):
        manager = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise InputError(
            f"unknown lm-eval task(s): {', '.join(unknown)}",
            "check the name with `lm_eval ls tasks`, or pass --include-path DIR with your task YAMLs",
        )
    args = f"pretrained={base},dtype=float32"
    if adapter is not None:
        if backend == "vllm":
            args += f",enable_lora=True,lora_local_path={adapter}"
        else:
            args += f",peft={adapter}"
    # Under torchrun / accelerate launch every process runs this: lm-eval's HF backend then divides the requests
    # across the processes itself (one GPU each) and returns the results on rank 0 only; on CPU processes it
    # evaluates everything in each. vLLM parallelises inside one process (see evaluate()).
    res = lm_eval.simple_evaluate(
        model=backend,
        model_args=args,
        tasks=tasks,
        task_manager=manager,
        device=device,
        batch_size=batch_size,
        limit=limit,
        apply_chat_template=chat_template,
    )
    res = broadcast(res if current().is_main else None)
    out: dict[str, dict[str, float]] = {}
    for task, metrics in res["results"].items():
        out[task] = {
            k.split(",")[0]: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not k.split(",")[0].endswith("_stderr") and k != "sample_len"
        }
    return out


def toy_verdicts(
    model: str | Path, skills: list[str], adapter: str | Path | None = None, n: int = 200, seed: int = 0
) -> dict[str, list[bool]]:
    """Per skill, whether each of the ``n`` evaluation questions (``sample(skill, "eval", n, seed)``) is answered
    exactly; under several processes each scores a contiguous share of the questions, all get every verdict."""
    from ..toy.evaluate import load_model
    from ..toy.skills import sample

    m, tok = load_model(model, adapter)
    return {skill: toy_exact_match(m, tok, sample(skill, "eval", n, seed=seed)) for skill in skills}


def toy_exact_match(model, tokenizer, items: list[tuple[str, str]]) -> list[bool]:
    """The toy evaluator's exact match of ``items``, divided across the launched processes and gathered in order
    (each verdict depends on its own question only, so the division does not change it)."""
    from ..toy.evaluate import exact_match

    return gather(exact_match(model, tokenizer, split(items)))


def evaluate(
    model: str | Path,
    tasks: list[str],
    adapter: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    backend: str = "auto",
    include_path: str | Path | None = None,
    chat_template: bool = False,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Scores of MODEL (+ ADAPTER) per task: ``{task: {metric: value}}``; toy skills report ``exact_match``.

    ``device``: where lm-eval's HF backend runs (default: the GPU when one is visible). Under ``torchrun`` /
    ``accelerate launch`` every process calls this and gets the same scores: toy questions are divided across
    the processes, lm-eval tasks are divided by lm-eval itself."""
    if not tasks:
        raise InputError("no tasks given", "pass --tasks, e.g. --tasks gsm8k or --tasks toy:srt,toy:cnt")
    base, adapter_path = main_first(lambda: resolve_model(model, adapter))  # a repo id is pulled once
    toy = [t for t in tasks if is_toy_task(t)]
    other = [t for t in tasks if not is_toy_task(t)]
    results: dict[str, dict[str, float]] = {}
    if toy:
        skills = [_toy_name(t) for t in toy]
        verdicts = toy_verdicts(base, skills, adapter=adapter_path, n=limit or 200, seed=seed)
        results.update({f"{TOY_PREFIX}{s}": {"exact_match": sum(v) / len(v)} for s, v in verdicts.items()})
    if other:
        chosen = pick_backend(backend)
        if chosen == "vllm" and current().distributed:
            raise LaunchError(
                f"lm-eval's vLLM backend was launched on {current().world_size} processes; vLLM parallelises "
                "inside one process",
                "run 'deltahub eval --backend vllm' without torchrun / accelerate launch, or use --backend hf",
            )
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        results.update(
            _lm_eval(base, adapter_path, other, limit, batch_size, chosen, include_path, chat_template, device)
        )
    return results


def launch_line(tasks: list[str]) -> str:
    """What ``deltahub eval`` prints before it starts: how many processes, and how the work is divided."""
    toy = [t for t in tasks if is_toy_task(t)]
    how = []
    if toy:
        how.append("toy questions divided across processes")
    if len(toy) < len(tasks):
        how.append("lm-eval tasks divided by lm-eval (across GPUs; each CPU process evaluates all)")
    return current().line("evaluating", "; ".join(how))
