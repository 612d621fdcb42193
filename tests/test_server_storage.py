"""The registry store: incremental commit trees against a reference replay, their cost, and the
migration of a store written by the previous version (whole JSON trees per commit)."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from pathlib import Path

import pytest

from deltahub.server import history, migrate
from deltahub.server.storage import Store, git_blob_oid


def _add(store: Store, path: str, data: bytes) -> dict:
    return {
        "op": "add",
        "path": path,
        "sha256": store.put_bytes(data),
        "size": len(data),
        "lfs": False,
        "oid": git_blob_oid(data),
    }


def _as_dict(tree) -> dict:
    return {p: (e.sha256, e.size) for p, e in tree.items()}


def test_incremental_trees_equal_a_replay_of_every_commit(tmp_path, monkeypatch):
    """Random adds/deletes/folder deletes on two branches; every commit's tree, read cold, equals the replay."""
    monkeypatch.setattr(history, "SNAPSHOT_MIN_COST", 12)  # snapshots every few commits: both paths are read
    store = Store(tmp_path / "reg")
    repo = store.create_repo("model", "alice", "m", False, "alice")
    rng = random.Random(0)
    heads = {"main": store.resolve(repo, "main")}
    reference = {heads["main"]: _as_dict(store.tree(heads["main"]))}
    for step in range(120):
        if step == 30:
            store.set_ref(repo, "branch", "dev", heads["main"])
            heads["dev"] = heads["main"]
        branch = rng.choice(sorted(heads))
        files = dict(reference[heads[branch]])
        ops = []
        for _ in range(rng.randint(0, 4)):
            kind = rng.random()
            existing = sorted(p for p in files if p != ".gitattributes")
            if kind < 0.6 or not existing:
                path = f"d{rng.randint(0, 3)}/f{rng.randint(0, 15)}.txt"
                data = f"{step}-{rng.random()}".encode()
                ops.append(_add(store, path, data))
                files[path] = (hashlib.sha256(data).hexdigest(), len(data))
            elif kind < 0.9:
                path = rng.choice(existing)
                ops.append({"op": "delete", "path": path})
                del files[path]
            else:
                folder = rng.choice(existing).split("/")[0]
                ops.append({"op": "delete_folder", "path": folder})
                files = {p: v for p, v in files.items() if not p.startswith(folder + "/")}
        heads[branch] = store.commit(repo, branch, ops, f"step {step}", "", "alice", None)
        reference[heads[branch]] = files
    store.close()

    cold = Store(tmp_path / "reg")  # no cached trees: everything comes from snapshots + changes
    db = sqlite3.connect(tmp_path / "reg" / "registry.db")
    assert db.execute("SELECT COUNT(*) FROM commits WHERE base = sha").fetchone()[0] > 3  # snapshots happened
    for sha, files in reference.items():
        assert _as_dict(cold.tree(sha)) == files, sha
        for path in list(files)[:3] + ["d0/missing.txt"]:
            e = cold.entry(sha, path)
            assert (None if e is None else (e.sha256, e.size)) == files.get(path)
    assert cold.check() == []
    cold.close()


def test_a_one_file_commit_costs_one_row_not_the_repo(tmp_path):
    store = Store(tmp_path / "reg")
    repo = store.create_repo("model", "alice", "wide", False, "alice")
    same = _add(store, "x", b"same")
    store.commit(repo, "main", [dict(same, path=f"data/{i:05d}.txt") for i in range(5000)], "many", "", "a", None)
    db = sqlite3.connect(tmp_path / "reg" / "registry.db")

    def counts() -> tuple[int, int]:
        return (
            db.execute("SELECT COUNT(*) FROM changed_files").fetchone()[0],
            db.execute("SELECT COUNT(*) FROM snapshot_files").fetchone()[0],
        )

    before = counts()
    for i in range(50):
        store.commit(repo, "main", [_add(store, "data/00000.txt", str(i).encode())], f"c{i}", "", "a", None)
    changed, snapshot = counts()
    assert (changed - before[0], snapshot - before[1]) == (50, 0)
    # amortised: the next snapshot comes only once the chain has cost as many rows as the tree has files
    cost = db.execute("SELECT cost FROM commits WHERE sha=?", (store.resolve(repo, "main"),)).fetchone()[0]
    assert cost == 50 * (1 + history.COMMIT_COST)
    store.close()


def test_blob_paths_are_made_only_from_sha256(tmp_path):
    store = Store(tmp_path / "reg")
    for bad in ("../../etc/passwd", "/etc/hostname", "A" * 64, "a" * 63, "a" * 64 + "/x"):
        with pytest.raises(ValueError):
            store.blob_path(bad)
    store.close()


V0_SCHEMA = """
CREATE TABLE repos (id INTEGER PRIMARY KEY, type TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
  private INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, modified REAL NOT NULL,
  card TEXT NOT NULL DEFAULT '{}', tags TEXT NOT NULL DEFAULT '[]', UNIQUE(type, ns, name));
CREATE TABLE commits (sha TEXT PRIMARY KEY, repo INTEGER NOT NULL, parent TEXT, tree TEXT NOT NULL,
  title TEXT, message TEXT, author TEXT, date REAL NOT NULL);
CREATE INDEX commits_repo ON commits(repo);
CREATE TABLE refs (repo INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, target TEXT NOT NULL,
  PRIMARY KEY(repo, kind, name));
CREATE TABLE repo_tags (repo INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(repo, tag));
CREATE INDEX repo_tags_tag ON repo_tags(tag);
"""


def _v0_store(root: Path) -> dict[str, dict]:
    """A registry.db as the previous version wrote it: one JSON tree per commit. Returns the trees by commit."""
    (root / "blobs").mkdir(parents=True)

    def blob(data: bytes, lfs: bool = False) -> dict:
        sha = hashlib.sha256(data).hexdigest()
        (root / "blobs" / sha[:2]).mkdir(exist_ok=True)
        (root / "blobs" / sha[:2] / sha).write_bytes(data)
        return {"sha256": sha, "size": len(data), "oid": git_blob_oid(data), "lfs": lfs}

    c1 = {".gitattributes": blob(b"*.bin filter=lfs\n")}
    c2 = {**c1, "a.txt": blob(b"a"), "w.bin": blob(b"weights-1", True), "README.md": blob(b"---\ntags: [x]\n---\n")}
    c3 = {k: v for k, v in c2.items() if k != "a.txt"} | {"w.bin": blob(b"weights-2", True)}
    c4 = {**c2, "dev.txt": blob(b"dev")}
    trees = {"c1" * 20: c1, "c2" * 20: c2, "c3" * 20: c3, "c4" * 20: c4, "b0" * 20: c1}
    db = sqlite3.connect(root / "registry.db")
    db.executescript(V0_SCHEMA)
    db.execute("INSERT INTO repos VALUES (1, 'model', 'alice', 'old', 0, 1.0, 2.0, '{\"tags\": [\"x\"]}', '[\"x\"]')")
    bomb = json.dumps({"a": [["lol"] * 9] * 9**5})  # what version 0 stored for a 226-byte YAML bomb, in small
    db.execute("INSERT INTO repos VALUES (2, 'model', 'alice', 'bomb', 0, 1.0, 2.0, ?, '[]')", (bomb,))
    db.execute("INSERT INTO commits VALUES (?, 2, NULL, ?, 'bomb', '', 'alice', 1.0)", ("b0" * 20, json.dumps(c1)))
    db.execute("INSERT INTO refs VALUES (2, 'branch', 'main', ?)", ("b0" * 20,))
    for sha, parent in (("c1", None), ("c2", "c1"), ("c3", "c2"), ("c4", "c2")):
        db.execute(
            "INSERT INTO commits VALUES (?,?,?,?,?,?,?,?)",
            (sha * 20, 1, parent and parent * 20, json.dumps(trees[sha * 20]), sha, "", "alice", 1.0),
        )
    db.executemany(
        "INSERT INTO refs VALUES (1, ?, ?, ?)",
        [("branch", "main", "c3" * 20), ("branch", "dev", "c4" * 20), ("tag", "v1", "c2" * 20)],
    )
    db.commit()
    db.close()
    return trees


def test_a_store_of_the_previous_version_is_migrated(tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    from deltahub.server import start_server

    root = tmp_path / "reg"
    trees = _v0_store(root)
    store = Store(root)
    db = sqlite3.connect(root / "registry.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == migrate.SCHEMA_VERSION
    assert "tree" not in {r[1] for r in db.execute("PRAGMA table_info(commits)")}
    for sha, tree in trees.items():
        assert _as_dict(store.tree(sha)) == {p: (e["sha256"], e["size"]) for p, e in tree.items()}
    held = {r[0] for r in db.execute("SELECT sha256 FROM repo_objects WHERE repo=1 AND committed=1")}
    assert held == {e["sha256"] for t in trees.values() for e in t.values()}
    store.close()

    with start_server(root) as srv:  # the migrated store serves the real client, old revisions included
        api = HfApi(endpoint=srv.url, token="x")
        assert api.list_repo_files("alice/old") == [".gitattributes", "README.md", "w.bin"]
        assert sorted(api.list_repo_files("alice/old", revision="v1")) == [
            ".gitattributes",
            "README.md",
            "a.txt",
            "w.bin",
        ]
        got = hf_hub_download("alice/old", "w.bin", revision="dev", endpoint=srv.url, cache_dir=tmp_path / "c")
        assert Path(got).read_bytes() == b"weights-1"
        assert [c.title for c in api.list_repo_commits("alice/old")] == ["c3", "c2", "c1"]
        api.upload_file(path_or_fileobj=b"new", path_in_repo="new.txt", repo_id="alice/old")
        assert "new.txt" in api.list_repo_files("alice/old")
        assert api.model_info("alice/old").card_data.tags == ["x"]
        assert api.model_info("alice/bomb").card_data is None  # the oversized card was dropped
    assert Store(root).check() == []


@pytest.mark.parametrize("old_version", [1, 2])
def test_an_older_store_gains_discussions_collections_and_settings(tmp_path, old_version):
    """A store of version 1 (no mirrors table) or 2 (mirrors, but no discussions, collections, redirects, gated
    column) is upgraded in place to the latest version in one step; a version-2 mirror stays a mirror."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from deltahub.server import start_server

    root = tmp_path / "reg"
    store = Store(root)
    repo = store.create_repo("model", "alice", "m", False, "alice")
    mirror = store.create_repo("model", "bob", "upstream-copy", False, "bob")
    store.close()
    db = sqlite3.connect(root / "registry.db")
    for table in ("discussions", "discussion_events", "collections", "collection_items", "repo_redirects"):
        db.execute(f"DROP TABLE {table}")
    if old_version == 1:
        db.execute("DROP TABLE mirrors")
    else:
        db.execute("INSERT INTO mirrors VALUES (?, 'https://hub.example')", (mirror.id,))
    db.execute("DROP INDEX repos_nocase")
    db.execute("ALTER TABLE repos DROP COLUMN gated")
    db.execute(f"PRAGMA user_version={old_version}")
    db.commit()
    db.close()

    with start_server(root) as srv:
        api = HfApi(endpoint=srv.url, token="x")
        assert api.model_info("ALICE/M").sha == Store(root).resolve(repo, "main")
        api.update_repo_settings("alice/m", gated="manual")
        pr = api.create_commit("alice/m", [CommitOperationAdd("f.txt", b"x")], commit_message="pr", create_pr=True)
        assert api.model_info("alice/m").gated == "manual" and pr.pr_revision == "refs/pr/1"
        assert api.create_collection("c").slug.startswith("local/c-")
    assert sqlite3.connect(root / "registry.db").execute("PRAGMA user_version").fetchone()[0] == migrate.SCHEMA_VERSION
    store = Store(root)
    assert store.mirror_of(store.get_repo("model", "bob", "upstream-copy")) == (
        None if old_version == 1 else "https://hub.example"
    )
    store.close()
