"""Xet access tokens: what the Hub's ``xet-read-token``/``xet-write-token`` endpoints hand out.

Why self-contained signed tokens: the CAS API is called by hf_xet with nothing but this bearer token, so
the token carries its grant (repo id and creation time, user, scope, revision, expiry) signed with the
registry's secret (the one behind LFS upload tickets). Every CAS call verifies the signature and expiry,
then re-checks that the repo is still the same one and that the user can still read it, so a repo made
private or deleted stops a token at once. A read token is pinned to one commit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from ..errors import Forbidden, Unauthorized
from ..storage import Repo

TTL_S = 3600
PREFIX = "xet_"
MAX_TOKEN = 2048


@dataclass(frozen=True)
class Grant:
    repo: int
    created: float
    user: str | None
    scope: str  # "read" | "write"
    rev: str  # read: the commit sha the token is for; write: the revision the upload is meant for
    exp: int


def _sign(secret: bytes, body: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, body.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def issue(secret: bytes, repo: Repo, user: str | None, scope: str, rev: str, ttl: int = TTL_S) -> tuple[str, int]:
    """(token, expiry as unix seconds)."""
    exp = int(time.time()) + ttl
    grant = {"r": repo.id, "c": repo.created, "u": user, "s": scope, "v": rev, "e": exp}
    body = base64.urlsafe_b64encode(json.dumps(grant, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{PREFIX}{body}.{_sign(secret, body)}", exp


def verify(secret: bytes, authorization: str | None, need: str) -> Grant:
    """The grant of the request's bearer token; 401 when missing, forged or expired, 403 when a read token
    is used where writing needs a write token."""
    token = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN or token.count(".") != 1:
        raise Unauthorized("a Xet access token is required (ask the repo's xet-read-token or xet-write-token)")
    body, sig = token[len(PREFIX) :].split(".")
    if not hmac.compare_digest(_sign(secret, body).encode(), sig.encode()):
        raise Unauthorized("invalid Xet access token")
    try:
        raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        grant = Grant(int(raw["r"]), float(raw["c"]), raw["u"], str(raw["s"]), str(raw["v"]), int(raw["e"]))
    except (ValueError, KeyError, TypeError):
        raise Unauthorized("invalid Xet access token") from None
    if grant.exp <= time.time():
        raise Unauthorized("the Xet access token has expired: ask for a new one")
    if need == "write" and grant.scope != "write":
        raise Forbidden("this needs a Xet write token; the token given is a read token")
    return grant
