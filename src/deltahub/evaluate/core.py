"""Run tasks on a model folder (optionally with a PEFT adapter) and return ``{task: {metric: value}}``.

Toy skills (``toy:srt`` or a bare skill name such as ``srt``) go through the toy world's exact-match
evaluator; every other task name goes to lm-eval, so the real benchmarks (gsm8k, minerva_math500, mmlu,
gpqa_*) and local task YAMLs (``include_path``) share one result format.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import InputError
from ..registry.pull import resolve_local
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
        path = Path(spec)
        if path.exists():
            return path
        if str(spec).count("/") != 1:
            raise InputError(f"model not found: {spec}", "pass a local folder or a repo id NS/NAME[@REV]")
        return Path(resolve_local(str(spec)))

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
    out: dict[str, dict[str, float]] = {}
    for task, metrics in res["results"].items():
        out[task] = {
            k.split(",")[0]: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not k.split(",")[0].endswith("_stderr") and k != "sample_len"
        }
    return out


def evaluate(
    model: str | Path,
    tasks: list[str],
    adapter: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    backend: str = "auto",
    include_path: str | Path | None = None,
    chat_template: bool = False,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Scores of MODEL (+ ADAPTER) per task: ``{task: {metric: value}}``; toy skills report ``exact_match``."""
    if not tasks:
        raise InputError("no tasks given", "pass --tasks, e.g. --tasks gsm8k or --tasks toy:srt,toy:cnt")
    base, adapter_path = resolve_model(model, adapter)
    toy = [t for t in tasks if is_toy_task(t)]
    other = [t for t in tasks if not is_toy_task(t)]
    results: dict[str, dict[str, float]] = {}
    if toy:
        from ..toy.evaluate import evaluate as toy_evaluate

        skills = [_toy_name(t) for t in toy]
        scores = toy_evaluate(base, skills, adapter=adapter_path, n=limit or 200, seed=seed)
        results.update({f"{TOY_PREFIX}{s}": {"exact_match": scores[s]} for s in skills})
    if other:
        results.update(
            _lm_eval(
                base, adapter_path, other, limit, batch_size, pick_backend(backend), include_path, chat_template, device
            )
        )
    return results
