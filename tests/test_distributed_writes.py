"""Only rank 0 writes the outputs: every file system call of rank 1, as the kernel saw it.

Under ``torchrun --nproc_per_node 2`` rank 1 re-executes itself under ``strace`` (tests/launch_spy/
sitecustomize.py), so writes from native code (torch.save, safetensors, Arrow) are seen as well as Python's.
Rank 1 may write inside ``OUT.partial/`` only (the Trainer's per-process random state in each checkpoint,
datasets' cache files beside the prepared pairs); the adapter folder, its temporary sibling and everything
else next to it are rank 0's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import separable_pairs, write_jsonl

BIN = Path(sys.executable).parent
SPY = Path(__file__).resolve().parent / "launch_spy"
# a call that changes the file system: an open for writing/creating, or a rename/unlink/mkdir/link/...
MUTATING = re.compile(r"^\d+ +(open|openat|creat|rename\w*|unlink\w*|mkdir\w*|rmdir|link\w*|symlink\w*|truncate)\(")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
PATH = re.compile(r'(?:<(?P<dir>[^>]*)>)?, "(?P<path>[^"]*)"|\("(?P<first>[^"]*)"')


def mutated_paths(log: Path, cwd: Path) -> set[Path]:
    """Absolute paths that the traced process created, wrote, renamed (both ends) or removed successfully."""
    out: set[Path] = set()
    for line in log.read_text(errors="replace").splitlines():
        m = MUTATING.match(line)
        if not m or re.search(r"= -1 E", line) or "<unfinished" in line:
            continue
        if m.group(1).startswith(("open", "creat")) and not any(f in line for f in WRITE_FLAGS):
            continue
        for p in PATH.finditer(line):
            name = p.group("path") if p.group("path") is not None else p.group("first")
            base = Path(p.group("dir")) if p.group("dir") and not p.group("dir").startswith("/dev") else cwd
            out.add(Path(os.path.normpath(base / name)))
    return out


def strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-o", os.devnull, "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not strace_works(), reason="strace is missing or may not trace here: rank 1's calls are unseen")
def test_rank_one_writes_nothing_but_its_share_of_the_work_folder(tiny_model, tmp_path):
    write_jsonl(tmp_path / "pairs.jsonl", separable_pairs(32, seed=5))
    args = ["--student", str(tiny_model), "--pairs", "pairs.jsonl", "--out", "delta", "-q", "--rank", "4"]
    args += ["--alpha", "8", "--batch-size", "16", "--micro-batch-size", "4", "--max-steps", "2", "--save-steps", "1"]
    env = {**os.environ, "PYTHONPATH": str(SPY), "DELTAHUB_SPY_LOG": str(tmp_path / "trace")}
    proc = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "deltahub.train", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "training on 2 processes (gloo)" in proc.stderr
    log = tmp_path / "trace.rank1"
    written = {p for p in mutated_paths(log, tmp_path) if p.is_relative_to(tmp_path)}
    written -= {log}
    partial = tmp_path / "delta.partial"
    outside = sorted(str(p.relative_to(tmp_path)) for p in written if not p.is_relative_to(partial))
    assert outside == [], f"rank 1 wrote outside delta.partial/: {outside}"
    # what it did write is its own random state in both checkpoints (so the tracing saw native writes)
    assert {partial / f"checkpoint-{s}" / "rng_state_1.pth" for s in (1, 2)} <= written
    assert not partial.exists() and (tmp_path / "delta" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("trace")) == ["delta", "pairs.jsonl"]


def test_the_trace_reader_sees_writes_and_ignores_reads(tmp_path):
    """The reader of strace's lines, on lines strace 6 writes (so the test above can fail)."""
    log = tmp_path / "log"
    log.write_text(
        '7 openat(AT_FDCWD</w>, "a/b.json", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3</w/a/b.json>\n'
        '7 openat(AT_FDCWD</w>, "/w/read.txt", O_RDONLY|O_CLOEXEC) = 3</w/read.txt>\n'
        '7 rename("/w/.t.tmp", "/w/out/final") = 0\n'
        '7 unlinkat(5</w/d>, "x.arrow", 0) = 0\n'
        '7 mkdir("/w/new", 0777) = -1 EEXIST (File exists)\n'
        '7 openat(AT_FDCWD</w>, "c.pth", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 9</w/c.pth>\n'
    )
    assert mutated_paths(log, Path("/w")) == {
        Path("/w/a/b.json"),
        Path("/w/.t.tmp"),
        Path("/w/out/final"),
        Path("/w/d/x.arrow"),
        Path("/w/c.pth"),
    }
