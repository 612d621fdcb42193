"""Every class of bad input, fed to the real CLI: exit code 2, exactly one stderr line that names the
problem and the fix, no traceback, and nothing left behind (no partial output, no temp folder).

Most cases run the CLI entry point in this process (fast); every command also runs once in a
subprocess, as a user would, and the network cases always do (a fresh client, a real socket).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_registry_validate import adapter_dir, dataset_dir  # noqa: F401  (shared fixtures)
from test_train import separable_pairs, write_jsonl

from deltahub.cli import main

RECIPES = Path(__file__).parent.parent / "recipes"
DEAD_ENDPOINT = "http://127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert "Traceback" not in err and lines[0].startswith("error: ") and " (fix: " in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def in_process(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert_one_line_error(exc.value.code, err)
    return err


def subprocess_cli(*args: str, env: dict | None = None, code: int = 2) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "deltahub.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    if code == 2:
        assert_one_line_error(r.returncode, r.stderr)
    else:
        assert r.returncode == code, r.stderr
    return r.stderr


def leftovers(parent: Path, name: str) -> list[str]:
    """The output or any hidden sibling of it (temp folders, work folders)."""
    return sorted(p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}."))


# ----------------------------------------------------------------------------------------------
# inputs, built once


def _damaged(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    weights = next(dst.glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "oversized-header": struct.pack("<Q", 2**40) + data[8:]}[
            how
        ]
    )
    return dst


@pytest.fixture(scope="module")
def bad(tmp_path_factory, adapter_dir, tiny_model):  # noqa: F811
    d = tmp_path_factory.mktemp("bad")
    out = {how: _damaged(adapter_dir, d / f"adapter-{how}", how) for how in ("truncated", "empty", "oversized-header")}
    out["student-truncated"] = _damaged(tiny_model, d / "student-truncated", "truncated")
    for name, text in (("config-list", "[1, 2]"), ("config-malformed", '{"r": 4,')):
        shutil.copytree(adapter_dir, d / name)
        (d / name / "adapter_config.json").write_text(text)
        out[name] = d / name
    (d / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    out["binary"] = d / "binary.yaml"
    out["pairs"] = write_jsonl(d / "pairs.jsonl", separable_pairs(4))
    toy = yaml.safe_load((RECIPES / "toy-quick.yaml").read_text())
    for name, mutate in (
        ("beta-high", lambda r: r["deltas"][1].__setitem__("train", {"beta": "high"})),
        ("rank-big", lambda r: r["deltas"][0].__setitem__("train", {"rank": "big"})),
        ("train-list", lambda r: r["deltas"][0].__setitem__("train", ["rank", 4])),
    ):
        recipe = yaml.safe_load(yaml.safe_dump(toy))
        mutate(recipe)
        (d / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
        out[name] = d / f"{name}.yaml"
    return out


# ----------------------------------------------------------------------------------------------
# validate


@pytest.mark.parametrize(
    "how, reason",
    [("truncated", "incomplete metadata"), ("empty", "header too small"), ("oversized-header", "header too large")],
)
def test_validate_damaged_safetensors(bad, capsys, how, reason):
    err = in_process(capsys, "validate", bad[how])
    assert "adapter_model.safetensors is not a readable safetensors file" in err and reason in err


@pytest.mark.parametrize(
    "name, problem", [("config-list", "holds a JSON list"), ("config-malformed", "is not valid JSON")]
)
def test_validate_bad_adapter_config(bad, capsys, name, problem):
    err = in_process(capsys, "validate", bad[name])
    assert f"adapter_config.json {problem}" in err


def test_validate_damaged_safetensors_subprocess(bad):
    assert "header too small" in subprocess_cli("validate", bad["empty"])


# ----------------------------------------------------------------------------------------------
# merge: the same damaged adapters as the second input; nothing may be written


@pytest.mark.parametrize(
    "name, problem",
    [
        ("truncated", "is not a readable safetensors file (incomplete metadata"),
        ("empty", "is not a readable safetensors file (header too small"),
        ("oversized-header", "is not a readable safetensors file (header too large"),
        ("config-list", "adapter_config.json holds a JSON list"),
        ("config-malformed", "adapter_config.json is not valid JSON"),
    ],
)
def test_merge_damaged_adapter(bad, adapter_dir, tmp_path, capsys, name, problem):  # noqa: F811
    err = in_process(capsys, "merge", adapter_dir, bad[name], "--out", tmp_path / "merged")
    assert problem in err and str(bad[name]) in err
    assert leftovers(tmp_path, "merged") == []


def test_merge_damaged_adapter_subprocess(bad, adapter_dir, tmp_path):  # noqa: F811
    assert "header too small" in subprocess_cli("merge", adapter_dir, bad["empty"], "--out", tmp_path / "merged")
    assert leftovers(tmp_path, "merged") == []


# ----------------------------------------------------------------------------------------------
# train


def test_train_truncated_student_weights(bad, tmp_path, capsys):
    err = in_process(
        capsys, "train", "--student", bad["student-truncated"], "--pairs", bad["pairs"], "--out", tmp_path / "out"
    )
    assert "student weights" in err and "model.safetensors is not a readable safetensors file" in err
    assert leftovers(tmp_path, "out") == []


@pytest.mark.parametrize(
    "name, message",
    [
        ("beta-high", "deltas[1].train.beta: must be a number (got 'high')"),
        ("rank-big", "deltas[0].train.rank: must be a whole number (got 'big')"),
        ("train-list", "deltas[0].train: must be a mapping of settings (got a list)"),
    ],
)
def test_recipe_settings_of_the_wrong_type(bad, capsys, name, message):
    err = in_process(capsys, "run", bad[name], "--dry-run")
    assert message in err


def test_train_recipe_settings_and_flags(bad, tmp_path, capsys):
    recipe = tmp_path / "t.yaml"
    recipe.write_text("train:\n  beta: high\n")
    assert f"{recipe}: train.beta: must be a number (got 'high')" in in_process(capsys, "train", "--recipe", recipe)
    recipe.write_text("train:\n  - rank\n")
    assert "train: must be a mapping of settings (got a list)" in in_process(capsys, "train", "--recipe", recipe)
    assert "Invalid value for '--rank': 'big'" in in_process(capsys, "train", "--rank", "big")
    assert "beta: must be > 0 (got -1.0)" in in_process(capsys, "train", "--beta", "-1")
    err = subprocess_cli("train", "--recipe", recipe)  # one subprocess: no transformers import before the check
    assert "must be a mapping of settings" in err


def test_binary_recipe_file(bad, capsys):
    assert "is not a text file (not UTF-8)" in in_process(capsys, "run", bad["binary"], "--dry-run")
    assert "is not a text file (not UTF-8)" in in_process(capsys, "train", "--recipe", bad["binary"])
    assert "is not a text file" in subprocess_cli("run", bad["binary"], "--dry-run")


def test_suite_classes_of_train(bad, tiny_model, tmp_path, capsys):
    """Classes other tests also cover, here through the CLI with the one-line contract."""
    no_rejected = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a"}])
    assert "lack column(s) rejected" in in_process(
        capsys, "train", "--student", tiny_model, "--pairs", no_rejected, "--out", tmp_path / "o"
    )
    assert "missing --student, --out" in in_process(capsys, "train", "--pairs", no_rejected)
    (tmp_path / "exists").mkdir()
    assert "already exists" in in_process(
        capsys, "train", "--student", tiny_model, "--pairs", bad["pairs"], "--out", tmp_path / "exists"
    )
    assert leftovers(tmp_path, "o") == []


# ----------------------------------------------------------------------------------------------
# generate


def test_generate_model_that_fails_to_load_leaves_nothing(bad, tiny_model, tmp_path, capsys):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": "1+1?"}])
    err = in_process(
        capsys,
        "generate",
        "--chosen",
        bad["student-truncated"],
        "--rejected",
        tiny_model,
        "--prompts",
        prompts,
        "--out",
        tmp_path / "o",
    )
    assert "model weights" in err and "not a readable safetensors file" in err
    assert leftovers(tmp_path, "o") == [], "no .o.work/ when nothing was generated"
    err = subprocess_cli(
        "generate",
        "--chosen",
        tmp_path / "nope",
        "--rejected",
        tiny_model,
        "--prompts",
        prompts,
        "--out",
        tmp_path / "o",
        "--temperature",
        "-1",
    )
    assert "temperature: must be >= 0 (got -1.0)" in err
    assert "unknown column 'nope'" in in_process(
        capsys,
        "generate",
        "--chosen",
        tiny_model,
        "--rejected",
        tiny_model,
        "--prompts",
        prompts,
        "--out",
        tmp_path / "o",
        "--prompt-column",
        "nope",
    )
    assert leftovers(tmp_path, "o") == []


# ----------------------------------------------------------------------------------------------
# publish and pull


def test_publish_invalid_repo_id(dataset_dir, capsys):  # noqa: F811
    err = in_process(capsys, "publish", dataset_dir, "--repo", "local/a--b")
    assert "'local/a--b' is not a valid repo id" in err and "without '--' or '..'" in err


def test_pull_and_publish_with_the_registry_unreachable(dataset_dir, tmp_path):  # noqa: F811
    env = {"DELTAHUB_ENDPOINT": DEAD_ENDPOINT}
    err = subprocess_cli("pull", "alice/delta", "--out", tmp_path / "pulled", env=env)
    assert f"network error pulling alice/delta: the registry at {DEAD_ENDPOINT} did not answer" in err
    assert "after 3 tries" in err
    err = subprocess_cli("publish", dataset_dir, "--repo", "alice/pairs", env=env)
    assert f"the registry at {DEAD_ENDPOINT} did not answer" in err
    assert leftovers(tmp_path, "pulled") == []


def test_publish_without_rights(dataset_dir, tmp_path):  # noqa: F811
    from deltahub.server import start_server

    with start_server(tmp_path / "registry", open_mode=False, tokens={"tok-alice": "alice"}) as srv:
        err = subprocess_cli(
            "publish", dataset_dir, "--repo", "bob/pairs", env={"DELTAHUB_ENDPOINT": srv.url, "HF_TOKEN": "tok-alice"}
        )
    assert f"no write access to bob/pairs on {srv.url} (HTTP 403)" in err and "HF_TOKEN" in err


_KILLED_PULL = """
import os, signal, sys
from huggingface_hub import HfApi
real = HfApi.snapshot_download
def download_then_die(self, *args, **kwargs):
    real(self, *args, **kwargs)  # every file is in the temporary folder ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before the rename
HfApi.snapshot_download = download_then_die
from deltahub.cli import main
main(sys.argv[1:])
"""


def test_pull_killed_mid_download_is_cleaned_by_the_rerun(adapter_dir, tmp_path):  # noqa: F811
    from huggingface_hub import HfApi

    from deltahub.server import start_server

    with start_server(tmp_path / "registry") as srv:
        api = HfApi(endpoint=srv.url, token="deltahub-open")
        api.create_repo("alice/delta")
        api.upload_folder(repo_id="alice/delta", folder_path=str(adapter_dir))
        env = {**os.environ, "DELTAHUB_ENDPOINT": srv.url}
        out = tmp_path / "dl" / "pulled"
        out.parent.mkdir()
        (out.parent / ".pulled.keep.tmp").mkdir()  # not the naming scheme: never touched
        (out.parent / ".pulledx.abcdefgh.tmp").mkdir()
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_PULL, "pull", "alice/delta", "--out", str(out)],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert killed.returncode == -signal.SIGKILL
        stale = [p.name for p in out.parent.glob(".pulled.*.tmp") if p.name != ".pulled.keep.tmp"]
        assert len(stale) == 1 and (out.parent / stale[0] / "adapter_model.safetensors").is_file()
        assert not out.exists()
        subprocess_cli("pull", "alice/delta", "--out", out, env={"DELTAHUB_ENDPOINT": srv.url}, code=0)
    assert (out / "adapter_model.safetensors").read_bytes() == (adapter_dir / "adapter_model.safetensors").read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == [".pulled.keep.tmp", ".pulledx.abcdefgh.tmp", "pulled"]


def test_a_live_pull_is_not_cleaned(tmp_path):
    """A temporary folder another pull holds (flock) survives a concurrent rerun's cleanup."""
    import fcntl
    import tempfile

    from deltahub.share.pull import remove_stale_partials

    out = tmp_path / "pulled"
    live = Path(tempfile.mkdtemp(prefix=".pulled.", suffix=".tmp", dir=tmp_path))
    dead = Path(tempfile.mkdtemp(prefix=".pulled.", suffix=".tmp", dir=tmp_path))
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_stale_partials(out) == [dead]
    finally:
        os.close(fd)
    assert live.is_dir() and not dead.exists()


def test_damaged_pairs_provenance(tmp_path, capsys):
    """A pairs folder whose deltahub.json is damaged: one line, not a JSONDecodeError."""
    folder = tmp_path / "pairs"
    (folder / "data").mkdir(parents=True)
    write_jsonl(folder / "data" / "train.jsonl", separable_pairs(2))
    (folder / "deltahub.json").write_text("{broken")
    assert "deltahub.json is not valid JSON" in in_process(
        capsys, "train", "--student", tmp_path / "s", "--pairs", folder, "--out", tmp_path / "o"
    )
