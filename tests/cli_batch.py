"""Run several ``deltahub`` command lines in ONE subprocess, each through ``deltahub.cli.main``.

``main`` is the console script's entry point (click parsing, one-line errors, exit codes); a
fresh interpreter per command line would pay the torch import (~2-5 s on a busy 2-core machine)
each time. Every command's exit code, stdout and stderr are captured separately.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

_DRIVER = """
import contextlib, io, json, sys
from deltahub.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["deltahub", *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
    results.append([code, out.getvalue(), err.getvalue()])
sys.__stdout__.write("RESULTS " + json.dumps(results) + "\\n")
"""


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def start(argvs: list[list[str]]) -> subprocess.Popen:
    """Start the command lines (``deltahub`` omitted) in the background."""
    return subprocess.Popen(
        [sys.executable, "-c", _DRIVER, json.dumps(argvs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def results(proc: subprocess.Popen, timeout: float = 600) -> list[Result]:
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, err[-3000:]
    return [Result(*r) for r in json.loads(lines[-1][len("RESULTS ") :])]


def run(*argvs: list[str]) -> list[Result]:
    return results(start(list(argvs)))
