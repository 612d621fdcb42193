"""Imported at start-up by every Python process whose PYTHONPATH names this folder (the launch tests' runs).

With ``DELTAHUB_SPY_LOG`` set, a process of rank 1 or more (torchrun / accelerate set ``RANK``) re-executes
itself under ``strace``, which logs every file system call of the process and all its threads into
``$DELTAHUB_SPY_LOG.rank<N>`` -- native writers too (torch.save, safetensors, Arrow), which Python-level
hooks would miss. The tests read those logs to show that only rank 0 writes outputs.
"""

import os
import shutil
import sys

_log = os.environ.get("DELTAHUB_SPY_LOG")
_rank = os.environ.get("RANK", "0")
if _log and _rank != "0" and not os.environ.get("DELTAHUB_SPY_TRACED") and shutil.which("strace"):
    os.environ["DELTAHUB_SPY_TRACED"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    trace = ["strace", "-f", "-y", "-qq", "-e", "trace=%file", "-o", f"{_log}.rank{_rank}"]
    os.execvp("strace", [*trace, sys.executable, *sys.orig_argv[1:]])
