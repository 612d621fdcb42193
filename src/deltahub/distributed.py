"""Which process am I, how many are there, and what did the launcher ask for.

deltahub never starts processes for a stage itself: ``torchrun`` and ``accelerate launch`` do, and
accelerate's state (one per process, shared with transformers' Trainer) is the only source of rank,
world size and backend. On a machine without a GPU the state must be created with ``cpu=True``,
or accelerate ignores torchrun's environment and every process believes it is alone; hence
:func:`launch_state` here, called before anything else touches accelerate.

A launch that asked for several processes and got one (``accelerate launch --cpu --num_processes 2``
starts a single process, for instance) is not an error, but :class:`Launch` says so, in the line the
commands print and in the provenance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import DeltahubError, InputError

T = TypeVar("T")
CPU_CONFIG = "recipes/accelerate/cpu.yaml"


class LaunchError(InputError):
    """A setting that does not fit the launch (e.g. a batch that does not divide over the processes).

    Every rank raises it identically before any work, so the command line prints it once (rank 0)."""

    same_on_every_rank = True


@dataclass(frozen=True)
class Launch:
    """The processes of this run, as accelerate's state sees them, and what the launcher asked for."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None  # gloo, nccl, ... (None: no process group)
    distributed_type: str = "NO"  # accelerate's: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED
    launcher: str | None = None  # "torchrun", "accelerate launch" or None
    requested: int | None = None  # processes the launcher was asked for, where it can tell
    requested_type: str | None = None  # FSDP or DEEPSPEED when an accelerate config asked for it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def launched(self) -> bool:
        """Started by torchrun / accelerate launch, or on several processes: then the commands say how."""
        return self.launcher is not None or self.distributed

    @property
    def strategy_not_applied(self) -> bool:
        """True when an accelerate config asked for FSDP/DeepSpeed and the processes run something else."""
        return self.requested_type is not None and self.distributed_type not in ("NO", self.requested_type)

    @property
    def short_of_request(self) -> bool:
        """True when the launcher was asked for more processes than run."""
        return self.requested is not None and self.requested > self.world_size

    def line(self, what: str, detail: str = "") -> str:
        """``training on 2 processes (gloo) via torchrun: DETAIL``: what a command prints before it starts."""
        n = f"{self.world_size} process" + ("es" if self.world_size != 1 else "")
        text = f"{what} on {n} ({self.backend or 'no process group'})"
        if self.launcher:
            text += f" via {self.launcher}"
        if self.distributed_type not in ("NO", "MULTI_CPU", "MULTI_GPU"):
            text += f", {self.distributed_type}"
        if detail:
            text += f": {detail}"
        if self.short_of_request:
            text += f"; WARNING: {self.launcher or 'the launcher'} was asked for {self.requested} processes"
            if self.launcher == "accelerate launch":
                text += (
                    " but started one (its --cpu flag and a MULTI_CPU config without mpirun run a single process:"
                    f" use --config_file {CPU_CONFIG}, or --multi_gpu --num_processes N)"
                )
        if self.strategy_not_applied:
            text += (
                f"; WARNING: the accelerate config asked for {self.requested_type}, but accelerate runs "
                f"{self.distributed_type} here"
                + (
                    " (it applies FSDP only on GPU-type process groups, not on CPU processes)"
                    if self.requested_type == "FSDP" and self.distributed_type == "MULTI_CPU"
                    else ""
                )
            )
        return text

    def with_trainer(self, trainer) -> Launch:
        """This launch with the strategy the Trainer's accelerator actually runs (FSDP, DEEPSPEED, MULTI_GPU ...)."""
        return dataclasses.replace(self, distributed_type=str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1])

    def provenance(self) -> dict[str, Any]:
        """The ``launch`` fields of a ``deltahub.json``."""
        return {
            "world_size": self.world_size,
            "backend": self.backend,
            "distributed_type": self.distributed_type,
            "launcher": self.launcher,
            "requested_processes": self.requested,
            "requested_distributed_type": self.requested_type,
        }


def launch_state(cpu: bool | None = None) -> Launch:
    """Initialise accelerate's process state and describe it; ``cpu`` (default: no GPU visible) selects
    the gloo backend on CPU processes.

    Call it once the device is known and before a Trainer is built; the Trainer reuses the process group.
    """
    env_world = _env_int("WORLD_SIZE")
    if env_world is None or env_world <= 1:  # one process: no process group to set up
        return Launch(launcher=_launcher(), requested=_requested(env_world), requested_type=_requested_type())
    state = _state(cpu)
    return Launch(
        world_size=state.num_processes,
        rank=state.process_index,
        local_rank=state.local_process_index,
        backend=state.backend,
        distributed_type=str(state.distributed_type).rsplit(".", 1)[-1],
        launcher=_launcher(),
        requested=env_world,
        requested_type=_requested_type(),
    )


def current() -> Launch:
    """The launch of this process (set up on first use, with the backend for the visible devices)."""
    return launch_state()


def _state(cpu: bool | None = None):
    """accelerate's shared process state; created with ``cpu`` the first time (later calls reuse it)."""
    from accelerate import PartialState

    if cpu is None:
        import torch

        cpu = not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def accumulation_steps(batch_size: int, micro_batch_size: int, world_size: int) -> int:
    """Gradient accumulation that keeps the global batch at ``batch_size`` on ``world_size`` processes."""
    per_step = micro_batch_size * world_size
    if batch_size % per_step:
        raise LaunchError(
            f"--batch-size {batch_size} does not divide into --micro-batch-size {micro_batch_size} x "
            f"{world_size} process{'es' if world_size != 1 else ''} (= {per_step} pairs per accumulation step)",
            f"choose a --batch-size that is a multiple of {per_step}, or another --micro-batch-size",
        )
    return batch_size // per_step


def wait_for_everyone() -> None:
    """A barrier across the processes (nothing to wait for in one process)."""
    if current().distributed:
        _state().wait_for_everyone()


def main_first(fn: Callable[[], T]) -> T:
    """``fn()`` on every process, the main process first (it fills a cache the others then read).

    Unlike a bare barrier, a failure on the main process is raised on every process (see :func:`on_main`)."""
    if not current().distributed:
        return fn()
    result = on_main(fn, share=False)
    return result if current().is_main else fn()


def split(items: Sequence[T]) -> list[T]:
    """This process's contiguous share of ``items`` (accelerate's split; all of them in one process)."""
    if not current().distributed:
        return list(items)
    with _state().split_between_processes(list(items)) as mine:
        return list(mine)


def gather(mine: list[T]) -> list[T]:
    """Every process's :func:`split` share, concatenated in rank order, on every process."""
    if not current().distributed:
        return list(mine)
    from accelerate.utils import gather_object

    return list(gather_object(list(mine)))


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every process."""
    if not current().distributed:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def on_main(fn: Callable[[], T], share: bool = True) -> T | None:
    """Run ``fn`` on the main process only and give every process its result (None with ``share=False``:
    the other processes only learn that it is done).

    An exception on the main process is raised on every process (a user error as itself), so no
    process is left waiting at a collective for one that has failed."""
    if not current().distributed:
        return fn()
    outcome: tuple[str, Any]
    if current().is_main:
        try:
            result = fn()
            outcome = ("ok", result if share else None)
        except DeltahubError as exc:
            outcome = ("user", (type(exc), exc.message, exc.fix))
        except BaseException as exc:
            outcome = ("bug", f"{type(exc).__name__}: {exc}")
            broadcast(outcome)
            raise
    else:
        outcome = ("", None)
    kind, value = broadcast(outcome)
    if kind == "user":
        error_type, message, fix = value
        raise error_type(message, fix)
    if kind == "bug":
        raise RuntimeError(f"the main process failed: {value}")
    return result if current().is_main else value


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _launcher() -> str | None:
    if "ACCELERATE_DYNAMO_BACKEND" in os.environ:  # set by every accelerate launcher
        return "accelerate launch"
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun"
    return None


def _requested_type() -> str | None:
    """The strategy an ``accelerate launch`` config asked for (accelerate exports it to every process)."""
    for name, kind in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED")):
        if os.environ.get(name, "").lower() == "true":
            return kind
    return None


def _requested(env_world: int | None) -> int | None:
    """Processes asked for when only one runs: torchrun's WORLD_SIZE, or what accelerate was told.

    accelerate's single-process launcher exports MASTER_ADDR only when it was asked for more than one
    process; the number itself is read from its command line with accelerate's own parser."""
    if env_world is not None:
        return env_world
    if _launcher() != "accelerate launch" or "MASTER_ADDR" not in os.environ:
        return None
    return _accelerate_num_processes() or 2  # at least two, by the MASTER_ADDR signal


@functools.cache
def _accelerate_num_processes() -> int | None:
    """``--num_processes`` (or its config file's) of the ``accelerate launch`` that started this process."""
    with contextlib.suppress(Exception):  # best effort: the parent may be gone or unreadable
        import psutil
        from accelerate.commands.config.config_args import load_config_from_file
        from accelerate.commands.launch import launch_command_parser

        argv = psutil.Process(os.getppid()).cmdline()
        start = next(i for i, a in enumerate(argv) if a == "launch") + 1
        args = launch_command_parser().parse_args(argv[start:])
        if args.num_processes:
            return int(args.num_processes)
        if args.config_file:
            return int(load_config_from_file(args.config_file).num_processes)
    return None
