"""One rule for "a folder or NS/NAME[@REV]" (deltahub.share.source), used by every command that takes one.

The registry side runs the real huggingface_hub client against the embedded registry on loopback; the
expected commits are read back from the registry with the client itself, not from deltahub.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deltahub.errors import DeltahubError, InputError
from deltahub.share.source import is_repo_spec, resolve_source

ROOT = Path(__file__).resolve().parents[1]
FIX = "pass a folder or NS/NAME[@REV]"


@pytest.mark.parametrize(
    ("text", "suffixes", "repo"),
    [
        ("alice/delta", (), True),
        ("alice/delta@v1", (), True),
        ("alice/delta@feature/x", (), True),  # a branch may hold slashes
        ("alice/delta@" + "a" * 40, (), True),
        (" alice/delta ", (), True),
        ("alice/d.e_l-ta", (), True),
        ("./alice/delta", (), False),
        ("/alice/delta", (), False),
        ("~/alice", (), False),
        ("a/b/c", (), False),
        ("alice", (), False),
        ("not a/repo", (), False),
        ("alice/delta@", (), False),
        ("-alice/delta", (), False),
        ("alice/pairs.jsonl", (".jsonl", ".parquet"), False),  # a missing file, not a repo
        ("alice/pairs.JSONL", (".jsonl",), False),
        ("alice/pairs.jsonl", (), True),
        ("alice/pairs@v1.parquet", (".parquet",), True),  # the suffix is the revision's, not the name's
    ],
)
def test_what_reads_as_a_repo(text, suffixes, repo):
    assert is_repo_spec(text, suffixes) is repo


def test_missing_path_is_one_line_naming_the_input(tmp_path):
    for text in ("./nope", str(tmp_path / "nope"), "a/b/c", "alice"):
        with pytest.raises(InputError) as exc:
            resolve_source(text, what="adapter", fix=FIX)
        assert str(exc.value).startswith(f"adapter {text!r} not found") and exc.value.fix == FIX
        assert "\n" not in str(exc.value)


def test_a_folder_wins_and_home_expands(tmp_path, monkeypatch):
    (tmp_path / "alice" / "delta").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    s = resolve_source("alice/delta", what="adapter", fix=FIX)  # reads as a repo, exists as a folder: no request
    assert s.path == Path("alice/delta") and s.repo is None and s.revision is None and s.spec == "alice/delta"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_source("~/alice", what="x", fix=FIX).path == tmp_path / "alice"


@pytest.fixture(scope="module")
def repos(registry, tiny_model, tmp_path_factory):
    """alice/delta (an adapter: main, tag v1, branch feature/x each at a different commit) and alice/pairs
    (a dataset), made with the client; their commits as the registry reports them."""
    from huggingface_hub import HfApi

    from deltahub.tiny import build_random_adapter

    api = HfApi(endpoint=registry.url)
    root = tmp_path_factory.mktemp("source")
    commits = {}
    api.create_repo("alice/delta")
    for i, rev in enumerate(("v1", "feature/x", "main")):
        folder = build_random_adapter(tiny_model, root / f"a{i}", r=2, alpha=2, target_modules=["q_proj"], seed=i)
        if rev == "feature/x":
            api.create_branch("alice/delta", branch=rev)
        commit = api.upload_folder(
            repo_id="alice/delta", folder_path=str(folder), revision="feature/x" if rev == "feature/x" else None
        )
        commits[rev] = commit.oid
        if rev == "v1":
            api.create_tag("alice/delta", tag="v1")
    (root / "pairs.jsonl").write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    api.create_repo("alice/pairs", repo_type="dataset")
    commits["pairs"] = api.upload_file(
        path_or_fileobj=str(root / "pairs.jsonl"),
        path_in_repo="pairs.jsonl",
        repo_id="alice/pairs",
        repo_type="dataset",
    ).oid
    assert len({commits["v1"], commits["feature/x"], commits["main"]}) == 3
    return commits


@pytest.mark.parametrize("rev", ["v1", "feature/x", "main", None])
def test_a_repo_is_pulled_pinned_to_its_commit(repos, rev):
    text = "alice/delta" + (f"@{rev}" if rev else "")
    s = resolve_source(text, what="adapter", fix=FIX)
    assert (s.repo, s.revision, s.spec) == ("alice/delta", repos[rev or "main"], text)
    assert (s.path / "adapter_config.json").is_file()


def test_a_commit_sha_pins_too(repos):
    s = resolve_source(f"alice/delta@{repos['v1']}", what="adapter", fix=FIX)
    assert s.revision == repos["v1"]


def test_unknown_repo_and_revision_are_one_line(repos):
    with pytest.raises(InputError, match="no repo nobody/nothing") as exc:
        resolve_source("nobody/nothing", what="adapter", fix=FIX)
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="alice/delta has no revision 'v9'") as exc:
        resolve_source("alice/delta@v9", what="adapter", fix=FIX)
    assert "deltahub show alice/delta" in exc.value.fix


def test_an_invalid_name_fails_before_any_request(registry, repos):
    """Pointed at a closed port, a valid name ends in a network error; an invalid one never asks."""
    from deltahub.endpoint import connect

    connect(endpoint="http://127.0.0.1:9")
    try:
        for text in ("alice/bad--name", "alice/bad..name", "alice/" + "x" * 100):
            with pytest.raises(InputError, match="is not a valid repo id") as exc:
                resolve_source(text, what="adapter", fix=FIX)
            assert "\n" not in str(exc.value)
        with pytest.raises(DeltahubError, match="network error"):
            from deltahub.share.pull import pull_with_info

            pull_with_info("alice/delta", retries=1, backoff=0)
    finally:
        connect(endpoint=registry.url)


def test_every_command_resolves_the_same_way(repos, tmp_path):
    """merge, compose, pairs (train/generate), eval's model and pull each name their input the same way
    and pull the same commit for the same text."""
    from deltahub.compose.candidates import resolve as candidate
    from deltahub.evaluate.core import resolve_model
    from deltahub.generate.pairs import resolve_pairs
    from deltahub.merge.core import resolve_input
    from deltahub.share.pull import resolve_local

    assert resolve_input("alice/delta@v1").revision == repos["v1"]
    assert candidate("alice/delta@feature/x", validate=False).revision == repos["feature/x"]
    assert resolve_local("alice/delta").name == repos["main"]  # the cache folder is named by its commit
    assert resolve_pairs("alice/pairs")[1:] == ("alice/pairs", repos["pairs"])
    missing = str(tmp_path / "missing")
    for call, what in (
        (resolve_input, "adapter"),
        (lambda s: candidate(s, validate=False), "candidate"),
        (resolve_pairs, "pairs"),
        (resolve_model, "model"),
        (resolve_local, "delta"),
    ):
        with pytest.raises(InputError) as exc:
            call(missing)
        assert str(exc.value).startswith(f"{what} {missing!r} not found"), str(exc.value)
    with pytest.raises(InputError, match="pairs 'alice/gone.jsonl' not found"):
        resolve_pairs("alice/gone.jsonl")


def test_no_command_writes_its_own_rule():
    """The rule lives in share/source.py alone: no other module of the commands splits on '/' to decide."""
    found = []
    for path in sorted((ROOT / "src" / "deltahub").rglob("*.py")):
        rel = path.relative_to(ROOT / "src" / "deltahub").as_posix()
        if rel.startswith("server/") or rel == "share/source.py":  # the server parses URLs, not inputs
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "count"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "/"
            ):
                found.append(f"{rel}:{node.lineno}")
    assert not found, found
