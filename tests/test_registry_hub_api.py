"""The Hub behaviours huggingface_hub relies on beyond files and refs, through the real client, in token mode.

Each is something the client's own test suite checks (scripts/hf-conformance.py runs that suite);
here the few that deltahub's users meet, with the expected answer written out independently.
"""

from __future__ import annotations

import urllib.request
import warnings
from pathlib import Path

import pytest

from deltahub.server import start_server

TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-eve": "eve"}


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    srv = start_server(
        tmp_path_factory.mktemp("hubapi"), open_mode=False, tokens=TOKENS, orgs={"alice": ["lab"], "eve": ["vault"]}
    )
    srv._server.config.app.state.hub.auth.private_orgs.add("vault")
    srv._server.config.app.state.hub.auth.fullnames["alice"] = "Alice A."
    yield srv
    srv.stop()


def _api(srv, token: str = "tok-alice"):
    from huggingface_hub import HfApi

    return HfApi(endpoint=srv.url, token=token)


def test_identity_request_ids_and_repo_ids_as_on_the_hub(reg):
    alice = _api(reg)
    me = alice.whoami()
    assert (me["name"], me["fullname"], [o["name"] for o in me["orgs"]]) == ("alice", "Alice A.", ["lab"])
    asked = urllib.request.Request(f"{reg.url}/api/models", headers={"X-Request-Id": "abc-1"})
    with urllib.request.urlopen(asked) as r:
        assert r.headers["X-Request-Id"] == "abc-1"  # echoed, as the Hub does; a fresh one otherwise
    assert not alice.repo_exists("no-namespace") and not alice.file_exists("no-namespace", "x.txt")

    alice.create_repo("alice/CamelRepo")
    alice.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="ALICE/camelrepo")  # ids ignore case
    assert alice.model_info("alice/camelREPO").id == "alice/CamelRepo"
    assert _api(reg, "tok-eve").create_repo("vault/m").repo_id == "vault/m"
    assert _api(reg, "tok-eve").model_info("vault/m").private  # the org's repos are private by default
    assert not alice.repo_exists("vault/m")

    alice.move_repo("alice/CamelRepo", "lab/moved")
    assert alice.list_repo_files("alice/CamelRepo") == [".gitattributes", "x.txt"]  # the old name still answers
    alice.create_repo("alice/CamelRepo")  # until a new repo takes it
    assert alice.list_repo_files("alice/CamelRepo") == [".gitattributes"]
    assert alice.list_repo_files("lab/moved") == [".gitattributes", "x.txt"]


def test_gated_repos_refs_with_slashes_and_history_tools(reg, tmp_path):
    from huggingface_hub import CommitOperationAdd, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HfHubHTTPError

    alice, bob = _api(reg), _api(reg, "tok-bob")
    alice.create_repo("alice/g")
    alice.create_commit(
        "alice/g",
        [
            CommitOperationAdd("a/one.txt", b"1"),
            CommitOperationAdd("a/two.txt", b"2"),
            CommitOperationAdd("w.bin", b"weights"),
        ],
        commit_message="first",
    )
    alice.update_repo_settings("alice/g", gated="auto")
    assert alice.model_info("alice/g").gated == "auto" and bob.model_info("alice/g").gated == "auto"
    with pytest.raises(GatedRepoError):
        hf_hub_download("alice/g", "w.bin", endpoint=reg.url, token="tok-bob", cache_dir=tmp_path)
    with pytest.raises(GatedRepoError):
        bob.auth_check("alice/g")
    alice.auth_check("alice/g")
    alice.update_repo_settings("alice/g", gated=False)
    assert (
        Path(hf_hub_download("alice/g", "w.bin", endpoint=reg.url, token="tok-bob", cache_dir=tmp_path)).read_bytes()
        == b"weights"
    )

    alice.create_branch("alice/g", branch="feature/x")
    alice.upload_file(path_or_fileobj=b"on x", path_in_repo="x.txt", repo_id="alice/g", revision="feature/x")
    assert alice.list_repo_files("alice/g", revision="feature/x") == [
        ".gitattributes",
        "a/one.txt",
        "a/two.txt",
        "w.bin",
        "x.txt",
    ]
    assert "feature/x" in [b.name for b in alice.list_repo_refs("alice/g").branches]
    with pytest.raises(HfHubHTTPError) as bad:
        alice.create_tag("alice/g", tag="bad tag")
    assert bad.value.response.status_code == 400

    alice.delete_file("a", "alice/g")  # a folder named without its trailing slash
    tree = {f.path: f.last_commit.title for f in alice.list_repo_tree("alice/g", expand=True)}
    assert tree == {".gitattributes": "initial commit", "w.bin": "first"}
    commits = alice.list_repo_commits("alice/g", formatted=True)
    assert [c.title for c in commits] == ["Delete a with huggingface_hub", "first", "initial commit"]
    assert all(c.formatted_title == c.title for c in commits)

    [lfs] = list(alice.list_lfs_files("alice/g"))
    assert (lfs.filename, lfs.size, lfs.ref) == ("w.bin", 7, "refs/heads/main")
    alice.permanently_delete_lfs_files("alice/g", [lfs])
    assert list(alice.list_lfs_files("alice/g")) == [] and "w.bin" not in alice.list_repo_files("alice/g")
    with pytest.raises(EntryNotFoundError):  # older commits name it, but its bytes are gone
        hf_hub_download(
            "alice/g",
            "w.bin",
            revision=commits[1].commit_id,
            endpoint=reg.url,
            token="tok-alice",
            cache_dir=tmp_path / "c2",
        )

    alice.super_squash_history("alice/g")
    assert [c.title for c in alice.list_repo_commits("alice/g")] == ["Super-squash branch 'main' using huggingface_hub"]
    kept = [c.title for c in alice.list_repo_commits("alice/g", revision="feature/x")]  # other branches keep theirs
    assert kept == ["Permanently delete LFS files", "Upload x.txt with huggingface_hub", "first", "initial commit"]


def test_uploads_follow_gitignore_and_cards_are_validated(reg, tmp_path):
    alice = _api(reg)
    alice.create_repo("alice/up")
    alice.upload_file(path_or_fileobj=b"nested/*\n*.log\n", path_in_repo=".gitignore", repo_id="alice/up")
    (tmp_path / "nested").mkdir()
    for name in ("nested/a.bin", "keep.txt", "run.log", "odd\\name.txt"):
        (tmp_path / name).write_bytes(b"x")
    alice.upload_folder(folder_path=tmp_path, repo_id="alice/up")
    assert alice.list_repo_files("alice/up") == [".gitattributes", ".gitignore", "keep.txt", "odd\\name.txt"]

    bad = b"---\nlicense: not-a-licence\nmodel-index: foo\n---\n# x\n"
    with pytest.raises(ValueError, match="Invalid metadata in README.md") as exc:  # refused before any upload
        alice.upload_file(path_or_fileobj=bad, path_in_repo="README.md", repo_id="alice/up")
    assert '"license"' in str(exc.value) and '"model-index" must be an array' in str(exc.value)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        alice.upload_file(path_or_fileobj=b"no metadata", path_in_repo="README.md", repo_id="alice/up")
    assert any("Empty or missing yaml metadata" in str(w.message) for w in seen)
    alice.upload_file(
        path_or_fileobj=b"---\nlicense: mit\npipeline_tag: text-generation\n---\n# ok\n",
        path_in_repo="README.md",
        repo_id="alice/up",
    )
    assert [m.id for m in alice.list_models(pipeline_tag="text-generation")] == ["alice/up"]
    assert [m.id for m in alice.list_models(pipeline_tag="text-classification")] == []
