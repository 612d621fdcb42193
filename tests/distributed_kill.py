"""Run under a launcher: ``train_delta`` as ``deltahub train`` calls it, but every process is killed (SIGKILL)
right after the checkpoint of step K is on disk -- what a node failure or a scheduler's kill looks like.

    torchrun ... tests/distributed_kill.py SPEC.json   (SPEC: student, pairs, out, config, kill_after)
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch.distributed as dist
from transformers import TrainerCallback

from deltahub.train import TrainConfig, train_delta


class KillAfterSave(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            dist.barrier()  # every process has written its part of the checkpoint (e.g. its random state)
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    train_delta(
        spec["student"],
        spec["pairs"],
        spec["out"],
        TrainConfig(**spec["config"]),
        progress=False,
        callbacks=[KillAfterSave(spec["kill_after"])],
    )
    raise SystemExit("not killed: the run finished before the checkpoint it was to die after")
