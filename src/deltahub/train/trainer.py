"""``train_delta``: train one preference delta (a LoRA adapter) on a student with TRL + PEFT.

The reference is always the student with the adapter disabled (``peft_config`` + no ``ref_model``),
so every delta of one student shares one reference and the deltas can be merged. Training runs in
``OUT.partial/`` with checkpoints; a restarted run continues from the last one, and the finished
adapter folder is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..atomic import atomic_dir, atomic_write_text, check_output_dir
from ..distributed import Launch
from ..errors import DeltahubError, InputError
from ..share.cards import write_card
from ..weights import check_safetensors
from .config import TrainConfig
from .data import Pairs, load_training_pairs, split_heldout
from .health import DeltaHealthWarning, HealthMonitor
from .objectives import OBJECTIVES, trl_loss_kwargs
from .plots import plot_training_curves

REQUEST_FILE = "deltahub-request.json"
DATA_DIR = "data"  # the split pairs every process reads (inside OUT.partial/)
FINAL_DIR = "final"  # the trained adapter as the Trainer saves it, before it is renamed into OUT
TRAINER_ONLY_FILES = {"training_args.bin", "README.md"}  # a pickle, and PEFT's placeholder card (ours replaces it)
OPTIMIZER = "adamw_torch"
LENGTH_COLUMN = "length"
CURVE_KEYS = (
    "loss",
    "rewards/margins",
    "rewards/accuracies",
    "rewards/chosen",
    "rewards/rejected",
    "logps/chosen",
    "logps/rejected",
    "grad_norm",
    "learning_rate",
)


def work_dir(out: Path) -> Path:
    """The resumable work folder of ``out`` (checkpoints live here until the adapter is final)."""
    return out.with_name(out.name + ".partial")


# ----------------------------------------------------------------------------------------------
# checks that turn library errors into one-line user errors


def resolve_student(student: str | Path) -> str:
    """A local model folder (safetensors only) or a repo id served by the configured endpoint."""
    path = Path(student).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise InputError(f"student {path} has no config.json", "point --student at a Hugging Face model folder")
        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            raise InputError(
                f"student {path} has no .safetensors weights (pickled weights are refused)",
                "convert the weights to safetensors",
            )
        check_safetensors(weights, "student weights", "re-download or re-save the student (the file is damaged)")
        return str(path)
    from ..endpoint import connect

    connect()  # transformers reads the endpoint from the environment
    return str(student)


def _available_memory(cuda: bool) -> int | None:
    if cuda:
        import torch

        return int(torch.cuda.mem_get_info()[0])
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def check_fits(student_path: str, cuda: bool, margin: float = 1.3) -> None:
    """Refuse a student whose weights alone (x margin) exceed the free memory of the device."""
    path = Path(student_path)
    if not path.is_dir():
        return
    size = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    free = _available_memory(cuda)
    if free is not None and size * margin > free:
        where = "GPU" if cuda else "RAM"
        raise InputError(
            f"student weights ({size / 2**30:.1f} GiB) do not fit in free {where} ({free / 2**30:.1f} GiB)",
            "use a GPU with more memory, or shard it with 'accelerate launch' and recipes/accelerate/*.yaml",
        )


def check_targets(model, targets: Sequence[str]) -> None:
    """Every LoRA target must name linear layers of the student (PEFT's own error is cryptic)."""
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = [t for t in targets if t != "all-linear" and t not in names]
    if missing:
        raise InputError(
            f"LoRA target(s) {', '.join(missing)} do not exist in the student",
            f"choose from: {', '.join(sorted(names - {'lm_head'}))}",
        )


def check_tokenizer(tok, pairs: Pairs) -> None:
    if pairs.conversational and not getattr(tok, "chat_template", None):
        raise InputError(
            "the pairs are chat turns but the student's tokenizer has no chat template",
            "use a student with a chat template (tokenizer_config.json / chat_template.jinja), or plain-string pairs",
        )


# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet(enabled: bool, progress: bool) -> Iterator[None]:
    """Silence transformers/TRL/datasets chatter (our own bar and health warnings stay)."""
    if not enabled:
        yield
        return
    import datasets
    import transformers

    old_verbosity = transformers.logging.get_verbosity()
    bars = datasets.utils.logging.is_progress_bar_enabled()
    old_tqdm = os.environ.get("TQDM_DISABLE")
    hf_bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.disable_progress_bar()
    if not progress:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|trl|peft|torch)\b.*")
            yield
    finally:
        transformers.logging.set_verbosity(old_verbosity)
        if hf_bars:
            transformers.utils.logging.enable_progress_bar()
        if bars:
            datasets.utils.logging.enable_progress_bar()
        if old_tqdm is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old_tqdm


def _progress_callback(enabled: bool):
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class DeltaProgress(TrainerCallback):
        """One tqdm bar over optimizer steps, with the live margin and accuracy."""

        bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = tqdm(
                    total=state.max_steps,
                    initial=state.global_step,
                    desc="train delta",
                    unit="step",
                    disable=not enabled,
                    dynamic_ncols=True,
                )

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "rewards/margins" in logs:
                self.bar.set_postfix(
                    loss=f"{logs.get('loss', float('nan')):.3f}",
                    margin=f"{logs['rewards/margins']:.3f}",
                    acc=f"{logs.get('rewards/accuracies', float('nan')):.2f}",
                    refresh=False,
                )

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return DeltaProgress()


def _request(cfg: TrainConfig, student: str, pairs: Pairs, world_size: int) -> dict:
    """What must match for a partial run to be resumed rather than restarted (the number of processes too:
    each process's checkpointed random state and share of the data belong to that launch)."""
    return {
        "student": student,
        "pairs": pairs.source,
        "n_pairs": len(pairs.dataset),
        "world_size": world_size,
        "config": cfg.to_dict(),
    }


def _prepare_work(work: Path, request: dict, resume: bool) -> str | None:
    """Return the checkpoint to resume from (None for a fresh start); refuse mismatched partials.

    A fresh start (re)creates ``work``; the caller writes the training data into it."""
    from transformers.trainer_utils import get_last_checkpoint

    req_file = work / REQUEST_FILE
    if work.exists() and resume and req_file.exists():
        old = json.loads(req_file.read_text(encoding="utf-8"))
        if old != request:
            changed = sorted(
                k
                for k in set(old["config"]) | set(request["config"])
                if old["config"].get(k) != request["config"].get(k)
            )
            changed += [k for k in ("student", "pairs", "n_pairs") if old.get(k) != request.get(k)]
            if old.get("world_size", 1) != request["world_size"]:
                changed.append(f"processes: {old.get('world_size', 1)} then, {request['world_size']} now")
            raise InputError(
                f"{work} holds a partial run with other settings ({', '.join(changed)})",
                "pass --fresh to discard it, or rerun with the same settings (and processes) to resume",
            )
        last = get_last_checkpoint(str(work))
        if last and (work / DATA_DIR).is_dir():
            return last
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    atomic_write_text(req_file, json.dumps(request, indent=1, sort_keys=True))
    return None


def _prepare_data(work: Path, request: dict, resume: bool, pairs: Pairs, cfg: TrainConfig) -> tuple[str | None, tuple]:
    """(checkpoint to resume from, (train, held-out) datasets), the same on every process.

    The main process prepares the work folder and writes the split pairs into ``work/data`` once
    (``datasets.save_to_disk``); every process then reads that copy. So the caches TRL's tokenisation and
    reference log-probs write beside a dataset's files are in one folder all processes see (an in-memory
    dataset would cache in a temporary folder of its own process, which the other processes cannot open)."""
    from datasets import load_from_disk

    from ..distributed import on_main

    data = work / DATA_DIR

    def prepare() -> str | None:
        checkpoint = _prepare_work(work, request, resume)
        if checkpoint is None:
            train, heldout = split_heldout(pairs.dataset, cfg.eval_fraction, cfg.max_eval_pairs, cfg.seed)
            train.save_to_disk(str(data / "train"))
            if heldout is not None:
                heldout.save_to_disk(str(data / "heldout"))
        return checkpoint

    checkpoint = on_main(prepare)
    heldout = load_from_disk(str(data / "heldout")) if (data / "heldout").is_dir() else None
    return checkpoint, (load_from_disk(str(data / "train")), heldout)


def _trainer_args(cfg: TrainConfig, work: Path, cuda: bool, world_size: int = 1):
    """DPOConfig / ORPOConfig for a device-resolved ``cfg`` (see :meth:`TrainConfig.for_device`) on
    ``world_size`` processes (transformers' Trainer and accelerate run DDP/FSDP/DeepSpeed from there)."""
    common = dict(
        output_dir=str(work),
        per_device_train_batch_size=cfg.micro_batch_size,
        per_device_eval_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.accumulation_steps(world_size),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        weight_decay=cfg.weight_decay,
        optim=OPTIMIZER,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1,
        beta=cfg.beta,
        max_length=cfg.max_length,
        bf16=cfg.bf16,
        fp16=False,
        use_cpu=not cuda,
        gradient_checkpointing=cfg.gradient_checkpointing,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name=LENGTH_COLUMN,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        save_only_model=False,
        eval_strategy="no",
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=True,
        log_level="error",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every LoRA factor is in every forward pass
    )
    if OBJECTIVES[cfg.objective].trainer == "orpo":
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig(**common)
    from trl import DPOConfig

    return DPOConfig(
        **common, precompute_ref_log_probs=cfg.precompute_ref, **trl_loss_kwargs(cfg.objective, cfg.sft_weight)
    )


def _add_lengths(trainer) -> None:
    """A per-pair token length column for the length-grouped sampler (TRL's tokenised columns have no
    ``input_ids``); the padded length of a pair is its prompt plus the longer answer."""

    def length(row: dict) -> dict:
        prompt = len(row.get("prompt_ids") or row.get("prompt_input_ids") or [])
        answers = [
            len(row.get(k) or []) for k in ("chosen_ids", "rejected_ids", "chosen_input_ids", "rejected_input_ids")
        ]
        return {LENGTH_COLUMN: prompt + max(answers)}

    trainer.train_dataset = trainer.train_dataset.map(length)
    if trainer._signature_columns is None:
        trainer._set_signature_columns_if_needed()
    trainer._signature_columns = [*trainer._signature_columns, LENGTH_COLUMN]


def _build_trainer(
    cfg: TrainConfig, work: Path, cuda: bool, model, tok, data: tuple, callbacks: Sequence, world_size: int = 1
):
    """The TRL trainer for ``cfg.objective`` with our callbacks (and without its printers)."""
    from peft import LoraConfig
    from transformers import PrinterCallback, ProgressCallback

    if OBJECTIVES[cfg.objective].trainer == "orpo":
        from trl.experimental.orpo import ORPOTrainer as Trainer
    else:
        from trl import DPOTrainer as Trainer
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        task_type="CAUSAL_LM",
        target_modules=list(cfg.target_modules),
    )
    train_ds, eval_ds = data
    trainer = Trainer(
        model=model,
        args=_trainer_args(cfg, work, cuda, world_size),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tok,
        peft_config=lora,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if cfg.group_by_length:
        _add_lengths(trainer)
    return trainer


def _final_metrics(history: list[dict], window: int = 5) -> dict:
    """Mean of the last ``window`` train logs for each curve key (one log is noisy)."""
    logs = [e for e in history if "rewards/margins" in e]
    tail = logs[-window:]
    out = {}
    for key in CURVE_KEYS:
        vals = [e[key] for e in tail if key in e]
        if vals:
            out[key.replace("/", "_")] = sum(vals) / len(vals)
    return out


def _provenance(cfg: TrainConfig, pairs: Pairs, student: dict, run: dict, metrics: dict) -> dict:
    """The adapter's ``deltahub.json``: the settings from ``cfg`` (all of them, once) plus what the run did."""
    meta = pairs.meta or {}
    if pairs.repo:
        dataset = {"repo": pairs.repo, "revision": pairs.revision}
    elif isinstance(meta.get("dataset"), dict):
        dataset = meta["dataset"]
    else:
        dataset = {"repo": None, "revision": None}
    training, lora = cfg.provenance()
    training.update(
        run,
        optimizer=OPTIMIZER,
        reference="student with adapter disabled" if OBJECTIVES[cfg.objective].uses_reference else None,
        trainer=f"trl {_version('trl')}, peft {_version('peft')}",
    )
    return {
        "schema_version": 1,
        "kind": "adapter",
        "chosen": meta.get("chosen"),
        "rejected": meta.get("rejected"),
        "student": student,
        "prompts": meta.get("prompts"),
        "pairs": len(pairs.dataset),
        "filters": meta.get("filters"),
        "generation": meta.get("generation"),
        "training": training,
        "lora": lora,
        "dataset": dataset,
        "metrics": metrics,
        "gain": None,
    }


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# ----------------------------------------------------------------------------------------------
# the steps of one run


def _placement(cfg: TrainConfig) -> tuple[TrainConfig, bool, Launch]:
    """``cfg`` with the device- and launch-dependent defaults filled in, whether a GPU is used, and the launch
    (accelerate's process state is set up here, with the gloo backend on CPU processes)."""
    import torch

    from ..distributed import launch_state

    cuda = torch.cuda.is_available()
    launch = launch_state(cpu=not cuda)
    cfg = cfg.for_device(cuda, bool(cuda and torch.cuda.is_bf16_supported()), launch.world_size)
    if cfg.bf16 and not cuda:
        raise InputError("bf16 training needs a GPU here", "drop --bf16 (CPU trains in fp32)")
    return cfg, cuda, launch


def _load_student(student: str, path: str, revision: str | None, cfg: TrainConfig, pairs: Pairs):
    """(tokenizer, model) of the student; library errors become one-line InputErrors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot load the tokenizer of student {student}: {exc}".splitlines()[0],
            "give a model folder or repo id with tokenizer files",
        ) from None
    check_tokenizer(tok, pairs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, revision=revision, use_safetensors=True, dtype=torch.bfloat16 if cfg.bf16 else torch.float32
        )
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot load student {student}: {exc}".splitlines()[0],
            "give a causal-LM folder or repo id with safetensors weights",
        ) from None
    except torch.OutOfMemoryError:
        raise InputError(
            f"student {student} does not fit in memory",
            "use a larger GPU or 'accelerate launch' with recipes/accelerate/*.yaml",
        ) from None
    check_targets(model, cfg.target_modules)
    return tok, model


def _fit(trainer, checkpoint: str | None, cfg: TrainConfig, monitor: HealthMonitor, work: Path) -> None:
    """Train (resuming from ``checkpoint``); OOM and a strict health stop become one-line errors."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", DeltaHealthWarning)
            trainer.train(resume_from_checkpoint=checkpoint)
    except torch.OutOfMemoryError:
        raise InputError(
            "out of memory while training",
            "lower --micro-batch-size or --max-length, turn on --gradient-checkpointing, "
            "or shard with recipes/accelerate/*.yaml",
        ) from None
    if cfg.strict and monitor.events:
        ev = monitor.events[0]
        raise DeltahubError(f"{ev.message} (stopped at step {ev.step}; partial run kept in {work})", ev.fix)


def _run_metrics(trainer, has_eval: bool, monitor: HealthMonitor) -> tuple[list[dict], dict]:
    """(the logged curves, the summary metrics incl. held-out reward accuracy and health events)."""
    eval_metrics = trainer.evaluate() if has_eval else {}
    history = [e for e in trainer.state.log_history if "rewards/margins" in e or "loss" in e]
    metrics = _final_metrics(history)
    metrics["heldout_reward_accuracy"] = eval_metrics.get("eval_rewards/accuracies")
    metrics["heldout_reward_margin"] = eval_metrics.get("eval_rewards/margins")
    metrics["heldout_loss"] = eval_metrics.get("eval_loss")
    metrics["health"] = [e.to_dict() for e in monitor.events]
    return history, metrics


def _write_adapter(
    out: Path, overwrite: bool, saved: Path, student: str, title: str, history: list[dict], block: dict
) -> None:
    """Adapter and tokenizer as the Trainer saved them (``saved``), provenance, curves and card, renamed into
    place only when all are written. The Trainer's pickled training arguments are not part of an adapter."""
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for f in sorted(saved.iterdir()):
            if f.is_file() and f.name not in TRAINER_ONLY_FILES:
                shutil.copy2(f, tmp / f.name)
        _set_base_model(tmp / "adapter_config.json", student)
        atomic_write_text(tmp / "metrics.jsonl", "".join(json.dumps(e) + "\n" for e in history))
        plot_training_curves(history, tmp / "training_curves.png", title=title)
        atomic_write_text(tmp / "deltahub.json", json.dumps(block, indent=2) + "\n")
        write_card(tmp, "adapter")


def train_delta(
    student: str | Path,
    pairs,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    quiet: bool = True,
    student_revision: str | None = None,
    callbacks: Sequence = (),
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train a preference delta (PEFT LoRA adapter) of ``student`` on ``pairs``; return ``out``.

    ``pairs``: a ``deltahub generate`` folder, a .jsonl/.parquet file, a dataset repo id[@rev], or an
    in-memory ``datasets.Dataset`` / list of dicts with ``prompt``/``chosen``/``rejected``.

    ``out`` receives adapter_config.json, adapter_model.safetensors, tokenizer files,
    ``deltahub.json`` (provenance), ``metrics.jsonl``, ``training_curves.png`` and ``README.md``.
    A killed run restarted with the same arguments resumes from its last checkpoint in
    ``OUT.partial/``; ``resume=False`` discards it. Health warnings are ``DeltaHealthWarning``s;
    with ``config.strict`` a fired check stops training and raises ``DeltahubError``.

    Under ``torchrun`` / ``accelerate launch`` every process calls this; ``batch_size`` stays the global batch
    (accumulation = batch / (micro-batch x processes)), the main process alone writes ``out``, and ``log``
    (main process only) gets the line that says how many processes train.
    """
    from ..distributed import main_first, wait_for_everyone

    out = check_output_dir(Path(out), overwrite)
    cfg, cuda, launch = _placement(config or TrainConfig())
    accumulation = cfg.accumulation_steps(launch.world_size)
    # a repo id is pulled once, by the main process; the others then read the cache
    pairs_data, student_path = main_first(lambda: (load_training_pairs(pairs), resolve_student(student)))
    check_fits(student_path, cuda)
    with _quiet(quiet, progress):
        from transformers import set_seed

        tok, model = _load_student(str(student), student_path, student_revision, cfg, pairs_data)
        work = work_dir(out)
        request = _request(cfg, str(student), pairs_data, launch.world_size)
        checkpoint, data = _prepare_data(work, request, resume, pairs_data, cfg)
        monitor = HealthMonitor(
            cfg.beta,
            OBJECTIVES[cfg.objective].uses_reference,
            cfg.strict,
            cfg.collapse_nats,
            cfg.min_margin_nats,
            cfg.health_after,
        )
        set_seed(cfg.seed)
        trainer = _build_trainer(
            cfg, work, cuda, model, tok, data, [monitor, _progress_callback(progress), *callbacks], launch.world_size
        )
        launch = launch.with_trainer(trainer)
        if log is not None and launch.is_main and launch.launched:  # a plain run: errors stay one line
            steps = f"{accumulation} accumulation step" + ("s" if accumulation != 1 else "")
            detail = f"micro-batch {cfg.micro_batch_size} x {steps} x {launch.world_size} = batch {cfg.batch_size}"
            log(launch.line("training", detail + (f"; resuming from {checkpoint}" if checkpoint else "")))
        _fit(trainer, checkpoint, cfg, monitor, work)
        history, metrics = _run_metrics(trainer, data[1] is not None, monitor)
        trainer.save_model(str(work / FINAL_DIR))  # every process: FSDP/ZeRO-3 gather the adapter to the main one
        if launch.is_main:
            run = {
                "precision": "bf16" if cfg.bf16 else "fp32",
                "device": "cuda" if cuda else "cpu",
                "steps": trainer.state.global_step,
                "train_pairs": len(data[0]),
                "heldout_pairs": 0 if data[1] is None else len(data[1]),
                "gradient_accumulation_steps": accumulation,
                **launch.provenance(),
            }
            block = _provenance(cfg, pairs_data, {"model": str(student), "revision": student_revision}, run, metrics)
            _write_adapter(
                out,
                overwrite,
                work / FINAL_DIR,
                str(student),
                f"{cfg.objective} delta on {Path(str(student)).name}",
                history,
                block,
            )
    wait_for_everyone()  # the adapter is in place before any process returns
    if launch.is_main:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _set_base_model(config_path: Path, student: str) -> None:
    """Record the student as the user named it (not a temp path) so the adapter resolves elsewhere."""
    cfg = json.loads(config_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = student
    atomic_write_text(config_path, json.dumps(cfg, indent=2, sort_keys=True))
