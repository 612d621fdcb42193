"""Discussions and pull requests, stored next to the repos they belong to.

A discussion is numbered within its repo and holds the Hub's list of events (comments, status
changes, title changes, commits). A pull request is a discussion with a branch of its own, the ref
('pr', num) that clients address as ``refs/pr/<num>``, forked from its target branch at ``base``.
Merging applies the pull request's changes since ``base`` to the target's head in one commit, and
refuses when both sides changed the same file differently.
"""

from __future__ import annotations

import difflib
import html
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field

from .errors import Conflict, NotFound, RevisionNotFound, Unprocessable
from .history import Entry, Tree, diff
from .storage import ReadPolicy, Repo, Store, full_ref

MAX_DIFF_BYTES = 1024**2  # a pull request's text diff in its details; longer ones are cut (the Hub cuts them too)


def new_id() -> str:
    """An event id as the Hub writes them (24 hex digits, like a MongoDB ObjectId)."""
    return secrets.token_hex(12)


@dataclass
class Discussion:
    repo: int
    num: int
    title: str
    author: str
    is_pr: bool
    status: str  # open | closed | merged | draft
    created: float
    target: str | None  # the branch a pull request merges into
    base: str | None  # the target's commit the pull request started from
    merge_commit: str | None


@dataclass
class Event:
    id: str
    type: str  # comment | status-change | title-change | commit
    author: str
    created: float
    data: dict = field(default_factory=dict)


def _discussion(row: sqlite3.Row) -> Discussion:
    return Discussion(
        row["repo"],
        row["num"],
        row["title"],
        row["author"],
        bool(row["is_pr"]),
        row["status"],
        row["created"],
        row["target"],
        row["base"],
        row["merge_commit"],
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(row["id"], row["type"], row["author"], row["created"], json.loads(row["data"]))


class Discussions:
    """The discussions and pull requests of every repo in one store."""

    def __init__(self, store: Store):
        self.store = store

    # -- reading -------------------------------------------------------------------------------------
    def get(self, repo: Repo, num: int) -> Discussion:
        row = None
        if 0 < num < 2**31:  # a bigger number from a URL would not even fit SQLite's integers
            row = (
                self.store._db().execute("SELECT * FROM discussions WHERE repo=? AND num=?", (repo.id, num)).fetchone()
            )
        if row is None:
            raise NotFound(f"Discussion #{num} not found in {repo.repo_id}")
        return _discussion(row)

    def list(
        self, repo: Repo, kind: str | None = None, status: str | None = None, author: str | None = None
    ) -> list[Discussion]:
        """Newest first; ``kind`` 'discussion' | 'pull_request', ``status`` 'open' (drafts count) | 'closed' (and
        merged), as the Hub filters them."""
        sql, args = "SELECT * FROM discussions WHERE repo=?", [repo.id]
        if kind in ("discussion", "pull_request"):
            sql += " AND is_pr=?"
            args.append(int(kind == "pull_request"))
        if status == "open":
            sql += " AND status IN ('open', 'draft')"
        elif status == "closed":
            sql += " AND status IN ('closed', 'merged')"
        if author:
            sql += " AND author=?"
            args.append(author)
        return [_discussion(r) for r in self.store._db().execute(sql + " ORDER BY num DESC", args)]

    def events(self, repo: Repo, num: int) -> list[Event]:
        rows = self.store._db().execute(
            "SELECT * FROM discussion_events WHERE repo=? AND num=? ORDER BY created, rowid", (repo.id, num)
        )
        return [_event(r) for r in rows]

    def diff(self, repo: Repo, d: Discussion) -> str:
        """A git-style text diff of what the pull request changes since its base (binary and LFS files named only)."""
        if not d.is_pr:
            return ""
        before = self.store.tree(d.base) if d.base else {}
        after = self.store.tree(self.store.resolve(repo, full_ref("pr", str(d.num))))
        out: list[str] = []
        size = 0
        for path, new in sorted(diff(before, after).items()):
            old = before.get(path)
            chunk = [f"diff --git a/{path} b/{path}\n"]
            a, b = self._text(old), self._text(new)
            if a is None or b is None:
                chunk.append(
                    f"Binary files {'a/' + path if old else '/dev/null'} and "
                    f"{'b/' + path if new else '/dev/null'} differ\n"
                )
            else:
                chunk.extend(
                    difflib.unified_diff(a, b, f"a/{path}" if old else "/dev/null", f"b/{path}" if new else "/dev/null")
                )
            size += sum(len(line) for line in chunk)
            if size > MAX_DIFF_BYTES:
                out.append("... (diff cut)\n")
                break
            out.extend(chunk)
        return "".join(out)

    def _text(self, e: Entry | None) -> list[str] | None:
        if e is None:
            return []
        if e.lfs or e.size > MAX_DIFF_BYTES:
            return None
        try:
            return self.store.read_blob(e.sha256).decode("utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            return None

    # -- writing -------------------------------------------------------------------------------------
    @staticmethod
    def _add_event(db: sqlite3.Connection, repo: Repo, num: int, kind: str, author: str, data: dict) -> Event:
        event = Event(new_id(), kind, author, time.time(), data)
        db.execute(
            "INSERT INTO discussion_events VALUES (?,?,?,?,?,?,?)",
            (event.id, repo.id, num, kind, author, event.created, json.dumps(data)),
        )
        return event

    @staticmethod
    def comment_data(text: str, author: str, now: float) -> dict:
        latest = {"raw": text, "html": _html(text), "updatedAt": now, "author": author}
        return {
            "edited": False,
            "hidden": False,
            "latest": latest,
            "numEdits": 0,
            "editors": [author],
            "history": [latest],
        }

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        repo: Repo,
        num: int,
        title: str,
        author: str,
        is_pr: bool,
        status: str,
        target: str | None,
        base: str | None,
    ) -> None:
        try:
            db.execute(
                "INSERT INTO discussions VALUES (?,?,?,?,?,?,?,?,?,?)",
                (repo.id, num, title, author, int(is_pr), status, time.time(), target, base, None),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"discussion #{num} of {repo.repo_id} was opened at the same time: try again") from None

    def _next_num(self, repo: Repo) -> int:
        row = self.store._db().execute("SELECT MAX(num) AS n FROM discussions WHERE repo=?", (repo.id,)).fetchone()
        return (row["n"] or 0) + 1

    def _branch_head(self, repo: Repo, branch: str) -> str:
        head = self.store.refs(repo)["branch"].get(branch)
        if head is None:
            raise RevisionNotFound(f"Invalid rev id: {branch} (a pull request targets a branch)")
        return head

    def open(self, repo: Repo, title: str, description: str, author: str, is_pr: bool, target: str = "main") -> int:
        """A new discussion, or a draft pull request whose branch starts at ``target``'s head; its number."""
        head = self._branch_head(repo, target) if is_pr else None
        num = self._next_num(repo)
        with self.store._write() as db:
            self._insert(
                db, repo, num, title, author, is_pr, "draft" if is_pr else "open", target if is_pr else None, head
            )
            self._add_event(db, repo, num, "comment", author, self.comment_data(description, author, time.time()))
            if is_pr:
                db.execute("INSERT INTO refs VALUES (?,?,?,?)", (repo.id, "pr", str(num), head))
        return num

    def open_with_commit(
        self, repo: Repo, target: str, ops: list[dict], title: str, description: str, author: str, can_read: ReadPolicy
    ) -> tuple[int, str]:
        """A commit on a new pull request against branch ``target`` (``create_pr=1``): (number, commit sha)."""
        head = self._branch_head(repo, target)
        num = self._next_num(repo)

        def on_commit(db: sqlite3.Connection, sha: str) -> None:
            self._insert(db, repo, num, title, author, True, "open", target, head)
            self._add_event(db, repo, num, "comment", author, self.comment_data(description, author, time.time()))
            self._add_event(db, repo, num, "commit", author, {"subject": title, "oid": sha})

        sha = self.store.commit(
            repo,
            full_ref("pr", str(num)),
            ops,
            title,
            description,
            author,
            None,
            can_read,
            on_commit=on_commit,
            start=head,
        )
        return num, sha

    def commit_hook(self, repo: Repo, num: int, title: str, author: str):
        """What a commit pushed to pull request ``num`` adds to it (a 'commit' event), for ``Store.commit``."""

        def on_commit(db: sqlite3.Connection, sha: str) -> None:
            self._add_event(db, repo, num, "commit", author, {"subject": title, "oid": sha})

        return on_commit

    def comment(self, repo: Repo, num: int, author: str, text: str) -> Event:
        self.get(repo, num)
        with self.store._write() as db:
            return self._add_event(db, repo, num, "comment", author, self.comment_data(text, author, time.time()))

    def set_status(self, repo: Repo, num: int, status: str, author: str, comment: str | None) -> Event:
        d = self.get(repo, num)
        if d.status == "merged":
            raise Unprocessable(f"Pull request #{num} is merged: its status cannot change")
        with self.store._write() as db:
            db.execute("UPDATE discussions SET status=? WHERE repo=? AND num=?", (status, repo.id, num))
            if comment:
                self._add_event(db, repo, num, "comment", author, self.comment_data(comment, author, time.time()))
            return self._add_event(db, repo, num, "status-change", author, {"status": status})

    def rename(self, repo: Repo, num: int, title: str, author: str) -> Event:
        d = self.get(repo, num)
        with self.store._write() as db:
            db.execute("UPDATE discussions SET title=? WHERE repo=? AND num=?", (title, repo.id, num))
            return self._add_event(db, repo, num, "title-change", author, {"from": d.title, "to": title})

    def comment_event(self, repo: Repo, num: int, event_id: str) -> Event:
        self.get(repo, num)
        row = (
            self.store._db()
            .execute("SELECT * FROM discussion_events WHERE id=? AND repo=? AND num=?", (event_id, repo.id, num))
            .fetchone()
        )
        if row is None or row["type"] != "comment":
            raise NotFound(f"Comment {event_id[:40]} not found in discussion #{num}")
        return _event(row)

    def edit_comment(self, repo: Repo, num: int, event_id: str, content: str, editor: str) -> Event:
        event = self.comment_event(repo, num, event_id)
        latest = {"raw": content, "html": _html(content), "updatedAt": time.time(), "author": editor}
        data = event.data
        data.update(
            edited=True,
            latest=latest,
            numEdits=data["numEdits"] + 1,
            editors=sorted(set(data["editors"]) | {editor}),
            history=[latest, *data["history"]],
        )
        return self._save(event)

    def hide_comment(self, repo: Repo, num: int, event_id: str, by: str) -> Event:
        event = self.comment_event(repo, num, event_id)
        event.data.update(hidden=True, hiddenBy=by)
        return self._save(event)

    def _save(self, event: Event) -> Event:
        with self.store._write() as db:
            db.execute("UPDATE discussion_events SET data=? WHERE id=?", (json.dumps(event.data), event.id))
        return event

    def merge(self, repo: Repo, num: int, author: str, comment: str | None, can_read: ReadPolicy) -> str:
        """Merge pull request ``num`` into its target branch: one commit there; the merge commit's sha."""
        d = self.get(repo, num)
        if not d.is_pr:
            raise Unprocessable(f"#{num} is a discussion, not a pull request")
        if d.status not in ("open", "draft"):
            raise Unprocessable(f"Pull request #{num} is {d.status}: only an open pull request can be merged")
        target_head = self._branch_head(repo, d.target or "main")
        base, target = self.store.tree(d.base) if d.base else {}, self.store.tree(target_head)
        ours = diff(base, self.store.tree(self.store.resolve(repo, full_ref("pr", str(num)))))
        theirs = diff(base, target)
        conflicts = sorted(p for p, e in ours.items() if p in theirs and theirs[p] != e)
        if conflicts:
            raise Conflict(f"Pull request #{num} conflicts with {d.target}: " + ", ".join(conflicts[:20]))

        def on_commit(db: sqlite3.Connection, sha: str) -> None:
            db.execute(
                "UPDATE discussions SET status='merged', merge_commit=? WHERE repo=? AND num=?", (sha, repo.id, num)
            )
            if comment:
                self._add_event(db, repo, num, "comment", author, self.comment_data(comment, author, time.time()))
            self._add_event(db, repo, num, "status-change", author, {"status": "merged"})

        return self.store.commit(
            repo,
            d.target or "main",
            _ops(ours, target),
            d.title,
            f"Merged pull request #{num}",
            author,
            target_head,
            can_read,
            on_commit=on_commit,
        )


def _ops(changes: dict[str, Entry | None], onto: Tree) -> list[dict]:
    """``Store.commit`` operations applying ``changes`` (path -> entry, None = deleted) onto tree ``onto``."""
    ops: list[dict] = []
    for path, e in sorted(changes.items()):
        if e is None:
            if path in onto:
                ops.append({"op": "delete", "path": path})
        else:
            ops.append({"op": "add", "path": path, "sha256": e.sha256, "size": e.size, "lfs": e.lfs, "oid": e.oid})
    return ops


def _html(text: str) -> str:
    """A comment as HTML: escaped text in paragraphs (no markdown rendering: nothing here is trusted as markup)."""
    return "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip()) or "<p></p>"
