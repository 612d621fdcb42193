#!/usr/bin/env python
"""Hub API conformance: run the installed huggingface_hub's own test suite against a fresh embedded registry.

What it does, in a work folder (a temp folder unless --workdir):
1. downloads the sdist of the installed huggingface_hub version with pip (never vendored here) and unpacks it;
2. installs the suite's test-only tools (pytest-mock, pinned in constraints.txt) into a folder of its own;
3. starts ``deltahub hub serve --no-upstream`` on a free loopback port with the suite's users and tokens
   (USER/TOKEN, OTHER_USER/OTHER_TOKEN, ENTERPRISE_*; the enterprise org private by default);
4. points the suite at it: ENDPOINT_STAGING in tests/testing_constants.py and every hard-coded
   staging URL rewritten to the local URL, HF_ENDPOINT set, Xet on as in a default install (``--no-xet``:
   off, the suite's Xet tests set aside, as before the registry spoke Xet); installs
   scripts/hf_conformance_conftest.py as the suite's conftest.py (fixtures, set-aside table,
   network guard, per-test record);
5. runs pytest and prints passed / failed of the in-scope tests and every set-aside category with
   its count (``--json`` writes the whole record).

Usage: python scripts/hf-conformance.py [--workdir DIR] [--keep] [--sdist FILE] [--json OUT] [--no-xet] [-- PYTEST ARGS]
Exit code: 0 when the pass rate of in-scope tests reaches --target (default 0.98), 1 otherwise, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFTEST = Path(__file__).resolve().parent / "hf_conformance_conftest.py"
STAGING = "https://hub-ci.huggingface.co"
TEST_TOOLS = ["pytest-mock", "jedi", "parso"]  # what the suite imports beyond huggingface_hub's dependencies
# Files whose staging URLs are data for client-side URL parsing, not requests: left as they are.
KEEP_STAGING_URLS = {"test_utils_http.py", "test_utils_errors.py"}


class SetupError(Exception):
    pass


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise SetupError(f"{' '.join(cmd[:4])}... failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


def fetch_suite(work: Path, sdist: Path | None) -> Path:
    """The unpacked sdist of the installed huggingface_hub (downloaded with pip unless ``sdist`` is given)."""
    import huggingface_hub

    version = huggingface_hub.__version__
    if sdist is None:
        dl = work / "download"
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                str(dl),
                f"huggingface_hub=={version}",
            ]
        )
        found = sorted(dl.glob("huggingface_hub-*.tar.gz"))
        if not found:
            raise SetupError(f"pip download left no huggingface_hub sdist in {dl}")
        sdist = found[0]
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "sdist", filter="data")
    root = work / "sdist" / f"huggingface_hub-{version}"
    if not (root / "tests" / "testing_constants.py").is_file():
        raise SetupError(f"{sdist} has no tests/testing_constants.py: not the huggingface_hub {version} sdist")
    return root


def install_tools(work: Path) -> Path:
    target = work / "tools"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            "-c",
            str(REPO / "constraints.txt"),
            *TEST_TOOLS,
        ]
    )
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def suite_constants(tests: Path) -> dict[str, str]:
    """USER, TOKEN, ... as the suite defines them (read, not imported: the file is about to be rewritten)."""
    text = (tests / "testing_constants.py").read_text()
    return dict(re.findall(r'^([A-Z_]+) = "([^"]*)"', text, re.M))


def start_registry(work: Path, consts: dict[str, str]) -> tuple[subprocess.Popen, str]:
    tokens = {
        "tokens": {
            consts["TOKEN"]: consts["USER"],
            consts["OTHER_TOKEN"]: consts["OTHER_USER"],
            consts["ENTERPRISE_TOKEN"]: consts["ENTERPRISE_USER"],
        },
        # the staging accounts as the suite knows them: USER is in org valid_org_hub, the enterprise
        # org makes new repos private by default
        "orgs": {consts["USER"]: ["valid_org_hub"], consts["ENTERPRISE_USER"]: [consts["ENTERPRISE_ORG"]]},
        "private_by_default": [consts["ENTERPRISE_ORG"]],
        "fullnames": {consts["USER"]: consts.get("FULL_NAME", consts["USER"]), "valid_org_hub": "Dummy Hub Org"},
    }
    (work / "tokens.json").write_text(json.dumps(tokens))
    port = free_port()
    log = open(work / "registry.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deltahub",
            "hub",
            "serve",
            "--port",
            str(port),
            "--root",
            str(work / "registry"),
            "--tokens",
            str(work / "tokens.json"),
            "--no-upstream",
        ],  # only what the suite creates: no read-through to the public Hub
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"the registry did not start: see {work / 'registry.log'}") from None
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"


def point_suite_at(tests: Path, url: str) -> None:
    """Rewrite the staging endpoint to ``url`` and install the conformance conftest."""
    for path in tests.glob("*.py"):
        if path.name in KEEP_STAGING_URLS:
            continue
        text = path.read_text()
        if STAGING in text:
            path.write_text(text.replace(STAGING, url))
    (tests / "__init__.py").touch()
    shutil.copy(CONFTEST, tests / "conftest.py")


def run_suite(root: Path, tools: Path, url: str, out: Path, pytest_args: list[str], work: Path, xet: bool) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    # HF_ENDPOINT, not HUGGINGFACE_CO_STAGING=1: staging mode overrides HF_ENDPOINT with the real staging host
    env.update(
        HF_ENDPOINT=url,
        HF_CONFORMANCE_ENDPOINT=url,
        HF_CONFORMANCE_OUT=str(out),
        HF_TOKEN="",
        HUGGING_FACE_HUB_TOKEN="",
        HF_CONFORMANCE_XET="1" if xet else "0",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HOME=str(work / "hf-home"),
        DISABLE_SYMLINKS_IN_WINDOWS_TESTS="1",
        PYTHONPATH=os.pathsep.join([str(tools), str(root)]),
    )
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    (root / "pytest.ini").write_text(  # replaces the sdist's [tool.pytest.ini_options] (its -sv, durations...)
        "[pytest]\naddopts = -W error::FutureWarning -p no:cacheprovider -q --timeout 300\n"
        "markers =\n    api\n    transfer\n    inference\n    xet\n    no_xet\n    production\n    deprecated\n"
        "    git_lfs\n    vcr\n    asyncio\n"
    )
    cmd = [sys.executable, "-m", "pytest", "tests", "--continue-on-collection-errors", *pytest_args]
    with open(work / "pytest.log", "wb") as log:
        return subprocess.run(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


def summarise(out: Path) -> dict:
    records = {}
    for line in out.read_text().splitlines():
        r = json.loads(line)
        records[r["id"]] = r  # a test's last record wins
    aside: Counter[str] = Counter()
    in_scope: Counter[str] = Counter()
    failures = []
    for r in records.values():
        if r["outcome"] == "set aside":
            aside[r["category"]] += 1
        elif r["scope"] == "registry":
            in_scope[r["outcome"]] += 1
            if r["outcome"] == "failed":
                failures.append((r["id"], r["error"]))
        else:
            aside[f"{r['scope']} ({r['outcome']})"] += 1
    ran = in_scope["passed"] + in_scope["failed"]
    return {
        "in_scope": dict(in_scope),
        "pass_rate": in_scope["passed"] / ran if ran else 0.0,
        "set_aside": dict(sorted(aside.items(), key=lambda kv: -kv[1])),
        "failures": sorted(failures),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="work folder (default: a temp folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, registry, suite)")
    parser.add_argument("--sdist", type=Path, help="use this huggingface_hub sdist instead of downloading it")
    parser.add_argument("--json", type=Path, help="write the summary and every failure here")
    parser.add_argument("--no-xet", action="store_true", help="run with Xet off (git-LFS), its tests set aside")
    parser.add_argument("--target", type=float, default=0.98, help="pass rate of in-scope tests to reach")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hf-conformance-"))
    work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the registry
    started = time.monotonic()
    proc = None
    try:
        root = fetch_suite(work, args.sdist)
        tools = install_tools(work)
        consts = suite_constants(root / "tests")
        proc, url = start_registry(work, consts)
        point_suite_at(root / "tests", url)
        out = work / "results.jsonl"
        out.unlink(missing_ok=True)
        run_suite(root, tools, url, out, args.pytest_args, work, xet=not args.no_xet)
        if not out.is_file():
            raise SetupError(f"pytest recorded nothing: see {work / 'pytest.log'}")
        summary = summarise(out)
    except SetupError as exc:
        print(f"hf-conformance: {exc}", file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    s = summary["in_scope"]
    ran = s.get("passed", 0) + s.get("failed", 0)
    print(
        f"in scope: {s.get('passed', 0)} passed, {s.get('failed', 0)} failed of {ran} "
        f"({100 * summary['pass_rate']:.1f}%), {s.get('skipped', 0)} skipped by the suite itself"
    )
    print("set aside:")
    for name, count in summary["set_aside"].items():
        print(f"  {count:5d}  {name}")
    for test, error in summary["failures"]:
        print(f"FAILED {test}: {error.splitlines()[0][:200] if error else ''}")
    print(f"wall time {summary['wall_s']} s" + (f"; work folder {work}" if args.keep or args.workdir else ""))
    return 0 if summary["pass_rate"] >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
