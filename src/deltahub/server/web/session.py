"""Who is looking at a page: a bearer token kept in a cookie, and the CSRF token of its forms.

Why a cookie: a browser cannot send the API's ``Authorization`` header on a link or an <img>. The
cookie holds the same token the API takes (HttpOnly: no script can read it; SameSite=Strict: no
other site's page can make the browser send it; Secure over https). The API itself never reads it,
so the API keeps answering only what carries the header. Every state-changing form is a POST that
carries a copy of the CSRF cookie's value (double submit): another site can neither read that
cookie nor make the browser send it.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from ..auth import Auth
from ..errors import BadRequest, Forbidden, PayloadTooLarge

TOKEN_COOKIE = "deltahub_token"
CSRF_COOKIE = "deltahub_csrf"
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 32
_CSRF = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Visitor:
    """``user`` is whom the read policy sees (the open-mode user when nobody signed in to an open
    registry); ``signed_in`` is the account named by a valid token cookie, if any."""

    user: str | None
    signed_in: str | None
    csrf: str
    new_csrf: bool


def visitor(auth: Auth, request: Request) -> Visitor:
    token = request.cookies.get(TOKEN_COOKIE) or ""
    user = auth.user(f"Bearer {token}" if token else None)
    signed_in = user if token and token in auth.tokens else None
    csrf = request.cookies.get(CSRF_COOKIE) or ""
    fresh = not _CSRF.fullmatch(csrf)
    return Visitor(user, signed_in, secrets.token_urlsafe(32) if fresh else csrf, fresh)


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def remember_csrf(response: Response, request: Request, who: Visitor) -> None:
    """Set the CSRF cookie when this request had none (the page's forms carry the same value)."""
    if who.new_csrf:
        _cookie(response, request, CSRF_COOKIE, who.csrf, None)


def sign_in(response: Response, request: Request, token: str) -> None:
    _cookie(response, request, TOKEN_COOKIE, token, 30 * 86400)


def sign_out(response: Response, request: Request) -> None:
    response.delete_cookie(
        TOKEN_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


async def read_form(request: Request, who: Visitor) -> dict[str, str]:
    """A urlencoded POST body (small, few fields) whose ``csrf`` field matches the CSRF cookie."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"form too large (the limit is {MAX_FORM_BYTES} bytes)")
    try:
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise BadRequest(f"invalid form: more than {MAX_FORM_FIELDS} fields") from None
    form = dict(pairs)
    sent = form.get("csrf", "")
    if who.new_csrf or not hmac.compare_digest(sent.encode(), who.csrf.encode()):
        raise Forbidden("the form's security token is missing or stale: reload the page and submit it again")
    return form


def local_target(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (no open redirect)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return "/"
    return target[:2000]
