"""The resumable work folder: each model's responses go to disk one batch-shard at a time.

``OUT`` never exists half-written; work lives in a sibling ``.OUT.work/`` with ``run.json`` (the
fingerprint a resumed run must match), ``<role>/model.json`` and ``<role>/shard-<first index>.jsonl``
(written atomically, so a killed run leaves whole shards only). A restart skips finished shards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import InputError


class WorkDir:
    def __init__(self, out: Path, run: dict, restart: bool = False):
        self.path = out.parent / f".{out.name}.work"
        info = self.path / "run.json"
        if info.exists():
            previous = json.loads(info.read_text())
            started = self.started()
            if previous != run and not restart and started:
                changed = sorted(k for k in set(previous) | set(run) if previous.get(k) != run.get(k))
                raise InputError(
                    f"an unfinished run for {out} used different settings ({', '.join(changed)})",
                    "rerun with the same settings to resume, or pass --restart to discard it",
                )
            if restart or (previous != run and not started):
                shutil.rmtree(self.path)
        elif restart and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if not info.exists():
            atomic_write_text(info, json.dumps(run, indent=2, sort_keys=True))

    def done(self, role: str) -> set[int]:
        """First prompt indices of the batches already on disk."""
        return {int(p.stem.split("-")[1]) for p in (self.path / role).glob("shard-*.jsonl")}

    def write_shard(self, role: str, first: int, rows: list[dict]) -> None:
        atomic_write_text(self.path / role / f"shard-{first:09d}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def write_model(self, role: str, info: dict) -> None:
        atomic_write_text(self.path / role / "model.json", json.dumps(info))

    def model(self, role: str) -> dict:
        return json.loads((self.path / role / "model.json").read_text())

    def responses(self, role: str) -> list[dict]:
        rows: list[dict] = []
        for p in sorted((self.path / role).glob("shard-*.jsonl")):
            rows.extend(json.loads(line) for line in p.read_text().splitlines() if line)
        rows.sort(key=lambda r: r["index"])
        return rows

    def started(self) -> bool:
        return any(self.path.glob("*/shard-*.jsonl"))

    def remove_if_unstarted(self) -> None:
        """Drop a work folder that holds no answers yet (nothing there is worth resuming)."""
        if not self.started():
            self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
