"""Stage cache: a stage whose inputs (content hash) are unchanged and whose output exists is skipped.

The state lives in ``WORK/stages.json`` and is rewritten atomically after every finished stage,
so a run killed at any point resumes at the first unfinished stage (and the long stages —
generation and training — resume inside themselves from their own shards and checkpoints).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text


def content_key(inputs: Any) -> str:
    """A stable hash of JSON-serialisable stage inputs (upstream stage keys included)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageCache:
    def __init__(self, work: Path, log: Callable[[str], None] = print):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.file = self.work / "stages.json"
        self.state: dict[str, dict] = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.log = log
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def key(self, name: str) -> str | None:
        return self.state.get(name, {}).get("key")

    def run(self, name: str, inputs: Any, fn: Callable[[], Any], output: Path | None = None) -> tuple[str, Any]:
        """Run ``fn`` unless stage ``name`` already finished with the same inputs; returns (key, result)."""
        key = content_key(inputs)
        done = self.state.get(name)
        if done and done["key"] == key and (output is None or Path(output).exists()):
            self.skipped.append(name)
            self.log(f"  [skip] {name} (unchanged)")
            return key, done.get("result")
        self.log(f"  [run ] {name}")
        result = fn()
        self.state[name] = {"key": key, "result": result, "output": str(output) if output else None}
        atomic_write_text(self.file, json.dumps(self.state, indent=2, default=str))
        self.ran.append(name)
        return key, result
