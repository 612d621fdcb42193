"""Pull requests, discussions and collections on the embedded registry, through the real huggingface_hub
and the real ``hf`` CLI (in a subprocess), in token mode: alice owns alice/*, bob is an outsider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deltahub.server import start_server

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
# the CLI process gets the suite's network rule too: resolving any host but loopback fails at once
CLI = (
    "import socket\n_resolve = socket.getaddrinfo\n"
    "def _loopback_only(host, *args, **kwargs):\n"
    "    if host not in ('127.0.0.1', 'localhost', '::1'):\n"
    "        raise OSError(f'the test CLI may not resolve {host}')\n"
    "    return _resolve(host, *args, **kwargs)\n"
    "socket.getaddrinfo = _loopback_only\n"
    "from huggingface_hub.cli.hf import main\nmain()\n"
)


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("community"), open_mode=False, tokens=TOKENS)
    yield srv
    srv.stop()


def _api(srv, token: str):
    from huggingface_hub import HfApi

    return HfApi(endpoint=srv.url, token=token)


def hf(srv, token: str, *args: str, home: Path) -> str:
    """Run the real ``hf`` CLI against the registry; its stdout (a failure fails the test with its output)."""
    env = {
        **os.environ,
        "HF_ENDPOINT": srv.url,
        "HF_TOKEN": token,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_COLOR": "1",
    }
    done = subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, f"hf {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def test_a_pull_request_from_an_outsider_is_reviewed_by_revision_and_merged(reg, tmp_path):
    """bob cannot write alice/model but opens a pull request; its files are read at refs/pr/1 (client and CLI)
    while main is unchanged; alice comments and merges; main then holds exactly bob's bytes."""
    from huggingface_hub import CommitOperationAdd, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    alice, bob = _api(reg, "tok-alice"), _api(reg, "tok-bob")
    alice.create_repo("alice/model")
    alice.upload_file(path_or_fileobj=b"v1", path_in_repo="notes.txt", repo_id="alice/model")
    main_before = alice.model_info("alice/model").sha
    weights = os.urandom(50_000)  # an LFS file (.safetensors), uploaded by someone without write access
    with pytest.raises(HfHubHTTPError) as denied:
        bob.upload_file(path_or_fileobj=b"v2", path_in_repo="notes.txt", repo_id="alice/model")
    assert denied.value.response.status_code == 403

    info = bob.create_commit(
        "alice/model",
        [CommitOperationAdd("notes.txt", b"v2 by bob"), CommitOperationAdd("w.safetensors", weights)],
        commit_message="Better notes",
        commit_description="Please review",
        create_pr=True,
    )
    assert (info.pr_num, info.pr_revision) == (1, "refs/pr/1")
    assert info.pr_url == f"{reg.url}/alice/model/discussions/1"

    def read(revision: str, name: str = "notes.txt") -> bytes:
        return Path(
            hf_hub_download(
                "alice/model",
                name,
                revision=revision,
                endpoint=reg.url,
                token="tok-alice",
                cache_dir=tmp_path / "cache",
            )
        ).read_bytes()

    assert (read("main"), read("refs/pr/1"), read("refs/pr/1", "w.safetensors")) == (b"v1", b"v2 by bob", weights)
    assert alice.model_info("alice/model").sha == main_before
    assert alice.model_info("alice/model", revision="refs/pr/1").sha == info.oid
    assert [c.title for c in alice.list_repo_commits("alice/model", revision="refs/pr/1")][:1] == ["Better notes"]
    refs = alice.list_repo_refs("alice/model", include_pull_requests=True)
    assert [(r.ref, r.target_commit) for r in refs.pull_requests] == [("refs/pr/1", info.oid)]
    assert alice.list_repo_refs("alice/model").pull_requests is None
    out = hf(
        reg,
        "tok-alice",
        "download",
        "alice/model",
        "notes.txt",
        "--revision",
        "refs/pr/1",
        "--local-dir",
        str(tmp_path / "cli"),
        home=tmp_path / "home",
    )
    assert (tmp_path / "cli" / "notes.txt").read_bytes() == b"v2 by bob", out

    [pr] = alice.get_repo_discussions("alice/model")
    assert (pr.num, pr.author, pr.is_pull_request, pr.status, pr.title) == (1, "bob", True, "open", "Better notes")
    alice.comment_discussion("alice/model", 1, "Thanks, merging.")
    details = alice.get_discussion_details("alice/model", 1)
    assert [e.type for e in details.events] == ["comment", "commit", "comment"]
    assert details.events[0].content == "Please review" and details.events[1].oid == info.oid
    assert details.target_branch == "refs/heads/main" and "+v2 by bob" in details.diff

    with pytest.raises(HfHubHTTPError) as denied:
        bob.merge_pull_request("alice/model", 1)
    assert denied.value.response.status_code == 403
    out = hf(reg, "tok-alice", "discussions", "merge", "alice/model", "1", "--yes", home=tmp_path / "home")
    assert "Merged #1" in out
    merged = alice.get_discussion_details("alice/model", 1)
    assert merged.status == "merged" and merged.merge_commit_oid == alice.model_info("alice/model").sha
    assert (read("main"), read("main", "w.safetensors")) == (b"v2 by bob", weights)
    assert [c.title for c in alice.list_repo_commits("alice/model")][:2] == [
        "Better notes",
        "Upload notes.txt with huggingface_hub",
    ]


def test_conflicting_pull_request_is_refused_and_discussions_follow_their_rules(reg, tmp_path):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    alice, bob = _api(reg, "tok-alice"), _api(reg, "tok-bob")
    alice.create_repo("alice/talk")
    alice.upload_file(path_or_fileobj=b"a", path_in_repo="f.txt", repo_id="alice/talk")
    pr = bob.create_commit(
        "alice/talk", [CommitOperationAdd("f.txt", b"bob")], commit_message="bob's f", create_pr=True
    )
    alice.upload_file(path_or_fileobj=b"alice", path_in_repo="f.txt", repo_id="alice/talk")  # main moves on
    head = alice.model_info("alice/talk").sha
    with pytest.raises(HfHubHTTPError) as conflict:
        alice.merge_pull_request("alice/talk", pr.pr_num)
    assert conflict.value.response.status_code == 409 and "f.txt" in str(conflict.value)
    assert alice.model_info("alice/talk").sha == head
    assert alice.get_discussion_details("alice/talk", pr.pr_num).status == "open"

    d = bob.create_discussion("alice/talk", title="  A question  ")  # not a pull request
    assert (d.num, d.title, d.is_pull_request, d.status) == (2, "A question", False, "open")
    with pytest.raises(HfHubHTTPError):  # nobody merges a discussion
        alice.merge_pull_request("alice/talk", d.num)
    bob.rename_discussion("alice/talk", d.num, "A better question")  # its author may rename it
    first = bob.get_discussion_details("alice/talk", d.num).events[0]
    with pytest.raises(HfHubHTTPError) as denied, pytest.warns(UserWarning, match="irreversible"):
        bob.hide_discussion_comment("alice/talk", d.num, first.id)  # only writers hide comments
    assert denied.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as missing, pytest.warns(UserWarning, match="irreversible"):
        alice.hide_discussion_comment("alice/talk", d.num, "0" * 24)
    assert missing.value.response.status_code == 404
    closed = alice.change_discussion_status("alice/talk", d.num, "closed", comment="answered")
    assert closed.new_status == "closed"
    listed = json.loads(
        hf(
            reg,
            "tok-bob",
            "discussions",
            "list",
            "alice/talk",
            "--status",
            "all",
            "--format",
            "json",
            home=tmp_path / "home",
        )
    )
    assert sorted((x["num"], x["title"], x["status"]) for x in listed) == [
        (1, "bob's f", "open"),
        (2, "A better question", "closed"),
    ]
    assert [d.num for d in alice.get_repo_discussions("alice/talk", discussion_status="open")] == [1]
    assert [d.num for d in alice.get_repo_discussions("alice/talk", discussion_type="discussion")] == [2]


def test_collections_through_the_client_and_cli_never_show_a_private_repo(reg, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    alice, bob = _api(reg, "tok-alice"), _api(reg, "tok-bob")
    for repo_id, private in [("alice/delta-a", False), ("alice/delta-b", False), ("alice/hidden", True)]:
        alice.create_repo(repo_id, private=private)
    alice.create_repo("alice/prefs", repo_type="dataset")
    out = json.loads(
        hf(reg, "tok-alice", "collections", "create", "Preference deltas", "--format", "json", home=tmp_path / "home")
    )
    slug = out["slug"]
    assert slug.startswith("alice/preference-deltas-")
    hf(
        reg,
        "tok-alice",
        "collections",
        "add-item",
        slug,
        "alice/delta-a",
        "model",
        "--note",
        "the first",
        home=tmp_path / "home",
    )
    alice.add_collection_item(slug, "alice/prefs", "dataset")
    alice.add_collection_item(slug, "alice/hidden", "model")
    alice.add_collection_item(slug, "alice/delta-b", "model")
    with pytest.raises(HfHubHTTPError) as dup:
        alice.add_collection_item(slug, "alice/delta-a", "model")
    assert dup.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError):  # no such model: alice/prefs is a dataset
        alice.add_collection_item(slug, "alice/prefs", "model")
    with pytest.raises(HfHubHTTPError):  # bob cannot add to alice's collection, nor alice's private repo to his
        bob.add_collection_item(slug, "alice/delta-a", "model", exists_ok=True)

    mine = alice.get_collection(slug)
    assert [(i.item_id, i.item_type) for i in mine.items] == [
        ("alice/delta-a", "model"),
        ("alice/prefs", "dataset"),
        ("alice/hidden", "model"),
        ("alice/delta-b", "model"),
    ]
    assert mine.items[0].note == "the first" and mine.items[1].note is None
    theirs = bob.get_collection(slug)  # the private repo is not in bob's view, nor counted in positions
    assert [(i.item_id, i.position) for i in theirs.items] == [
        ("alice/delta-a", 0),
        ("alice/prefs", 1),
        ("alice/delta-b", 2),
    ]
    assert [c.slug for c in bob.list_collections(item="models/alice/delta-b")] == [slug]
    assert list(bob.list_collections(item="models/alice/hidden")) == []
    assert [c.slug for c in alice.list_collections(item="models/alice/hidden")] == [slug]
    listed = json.loads(
        hf(reg, "tok-bob", "collections", "ls", "--owner", "alice", "--format", "json", home=tmp_path / "home")
    )
    assert [c["slug"] for c in listed] == [slug]

    alice.update_collection_item(slug, mine.items[3].item_object_id, position=0, note="now first")
    alice.delete_collection_item(slug, mine.items[1].item_object_id)
    alice.move_repo("alice/delta-a", "alice/delta-renamed")
    renamed = alice.update_collection_metadata(slug, title="Best deltas", private=True)
    assert renamed.slug.split("-")[-1] == slug.split("-")[-1] and renamed.slug != slug
    now = alice.get_collection(slug)  # the old slug still works
    assert [(i.item_id, i.note) for i in now.items] == [
        ("alice/delta-b", "now first"),
        ("alice/delta-renamed", "the first"),
        ("alice/hidden", None),
    ]
    with pytest.raises(HfHubHTTPError) as hidden:
        bob.get_collection(slug)
    assert hidden.value.response.status_code == 404
    alice.delete_repo("alice/delta-b")
    assert [i.item_id for i in alice.get_collection(slug).items] == ["alice/delta-renamed", "alice/hidden"]
    hf(reg, "tok-alice", "collections", "delete", renamed.slug, home=tmp_path / "home")
    with pytest.raises(HfHubHTTPError):
        alice.get_collection(slug)
