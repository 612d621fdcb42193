"""The owner token of a DELTAHUB_HOME, the registries this home serves, and which token a client sends.

Why a token at all: on a shared machine every user reaches every loopback port, so a registry that
answers anyone serves one user's private repos to all the others. As Jupyter does for its local
server, deltahub makes one secret per home, in a file only its owner can read; the registries this
home starts accept it, and deltahub's own clients send it, without being told.

Why clients check where they send it: another user can listen on a loopback port too. The token goes
only to a registry this home started: the on-demand one of this process, one started in this process
(``server.start_server``), or a ``deltahub hub serve`` recorded in ``served.json`` (written by that
command, removed when it exits, entries of dead processes ignored).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

from ..errors import InputError
from ..home import home

OWNER = "local"  # the owner's user name: what the open registry called everyone, so old repos keep their owner
TOKEN_FILE = "owner-token"
SERVED_FILE = "served.json"
UPSTREAM_TOKEN_ENV = "DELTAHUB_UPSTREAM_TOKEN"
_TOKEN = re.compile(r"dh_[A-Za-z0-9_-]{40,100}")


def token_path() -> Path:
    return home() / TOKEN_FILE


def owner_token() -> str:
    """This home's owner token, created on first use (0600, atomically: racing processes agree on one)."""
    path = token_path()
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _create(path, "dh_" + secrets.token_urlsafe(32))
    except OSError as exc:
        raise InputError(
            f"cannot create the owner token {path}: {exc.strerror or exc}",
            "make that folder writable, or set DELTAHUB_HOME to one that is",
        ) from None
    return _read(path)


def _create(path: Path, token: str) -> None:
    """Write the token to a private temp file, then link it into place: the link fails if another process
    got there first (then its token wins), and nobody ever reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError as exc:  # a file system without hard links: exclusive create of the file itself
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            with contextlib.suppress(FileExistsError):
                fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd2, "w", encoding="ascii") as f:
                    f.write(token + "\n")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read(path: Path) -> str:
    fix = f"delete {path} (deltahub then makes a new owner token; sign in again where you used the old one)"
    try:
        st = path.stat()
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InputError(f"cannot read the owner token {path}: {exc.strerror or exc}", fix) from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise InputError(f"the owner token {path} can be read by other users", f"run: chmod 600 {path} (or {fix})")
    if not _TOKEN.fullmatch(text):
        raise InputError(f"{path} does not hold a deltahub owner token", fix)
    return text


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- registries this home serves (``deltahub hub serve``) ---------------------------------------------
def served_path() -> Path:
    return home() / SERVED_FILE


def _served() -> dict[str, dict]:
    try:
        data = json.loads(served_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process got that id: not ours
        return False
    return True


def _edit(change) -> None:
    """Read-modify-write ``served.json`` under a lock (two ``hub serve`` may start at once)."""
    import fcntl

    from ..atomic import atomic_write_text

    path = served_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(SERVED_FILE + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {u: e for u, e in _served().items() if isinstance(e, dict) and _alive(e.get("pid"))}
        change(data)
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")  # mkstemp: 0600


def served_urls(host: str, port: int) -> list[str]:
    """The URLs a client on this machine may use for a server bound to ``host:port``."""
    if host in ("0.0.0.0", "::", ""):
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    shown = f"[{host}]" if ":" in host else host
    urls = [f"http://{shown}:{port}"]
    if host == "127.0.0.1":
        urls.append(f"http://localhost:{port}")
    return urls


def record_served(urls: list[str], root: Path, tokens: list[str]) -> None:
    """Note that this process serves ``root`` at ``urls``, accepting ``tokens`` (kept as digests only)."""
    entry = {"root": str(root), "pid": os.getpid(), "tokens": sorted(token_digest(t) for t in tokens)}
    _edit(lambda data: data.update({u: entry for u in urls}))


def forget_served(urls: list[str]) -> None:
    def drop(data: dict) -> None:
        for u in urls:
            if data.get(u, {}).get("pid") == os.getpid():
                del data[u]

    with contextlib.suppress(OSError):
        _edit(drop)


def served_entry(url: str) -> dict | None:
    """The record of a live ``hub serve`` of this home at ``url``, or None."""
    entry = _served().get(url.rstrip("/"))
    return entry if isinstance(entry, dict) and _alive(entry.get("pid")) else None


def saved_hf_token() -> str | None:
    """The token ``hf auth login`` saved (read as huggingface_hub does, without importing it)."""
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    path = Path(os.environ.get("HF_TOKEN_PATH") or hf_home / "token")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def upstream_token() -> str | None:
    """What the registry sends its upstream for the owner: the user's own Hub token (DELTAHUB_UPSTREAM_TOKEN,
    which deltahub sets from HF_TOKEN before pointing HF_TOKEN at the registry; else hf auth login's)."""
    token = os.environ.get(UPSTREAM_TOKEN_ENV) or saved_hf_token()
    try:
        mine = _read(token_path())
    except (OSError, InputError):
        mine = None
    return None if token == mine else token  # the owner token never leaves for the upstream


# -- which token a client sends ----------------------------------------------------------------------
def choose_hf_token(url: str, open_token: str, loopback: bool) -> None:
    """HF_TOKEN for ``url``: the owner token for a registry this home started (unless the caller's HF_TOKEN is
    one that registry knows), never the owner token anywhere else (``open_token``, a public placeholder, where
    huggingface_hub needs some token for a loopback registry). The caller's own token, replaced, stays in
    DELTAHUB_UPSTREAM_TOKEN: the registry sends it to its upstream for the owner (private upstream repos)."""
    mine = owner_token()
    current = os.environ.get("HF_TOKEN")
    known = tokens_known_at(url)
    if known is not None:
        if current and current != mine and token_digest(current) in known:
            return  # a user of that registry, chosen by the caller
        if current and current not in (mine, open_token):
            os.environ.setdefault(UPSTREAM_TOKEN_ENV, current)
        os.environ["HF_TOKEN"] = mine
        return
    if current == mine:  # set for another registry of this home: it must not travel further
        saved = os.environ.get(UPSTREAM_TOKEN_ENV)
        if saved:
            os.environ["HF_TOKEN"] = saved
        else:
            del os.environ["HF_TOKEN"]
    if not os.environ.get("HF_TOKEN") and loopback and not saved_hf_token():
        # huggingface_hub refuses whoami/create without some token; an open registry takes a public one.
        os.environ["HF_TOKEN"] = open_token


def tokens_known_at(url: str) -> set[str] | None:
    """Digests of the tokens the registry at ``url`` accepts, when this home started it; None otherwise."""
    from ..server import running_here

    here = running_here(url)
    if here is not None:
        return {token_digest(t) for t in here.auth.tokens}
    served = served_entry(url)
    if served is not None:
        return set(served.get("tokens") or [])
    return None
