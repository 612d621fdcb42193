"""What a page reads from its URL besides the names ``paths.py`` checks: the repo type of the path and
query parameters, bounded and checked (a bad one is a 400 page naming it and the values it takes)."""

from __future__ import annotations

import re

from starlette.requests import Request

from ..errors import BadRequest

MAX_QUERY = 200
_DIGITS = re.compile(r"[0-9]{1,9}")


def page_of(rtype: str, repo_id: str) -> str:
    return f"/datasets/{repo_id}" if rtype == "dataset" else f"/{repo_id}"


def repo_type(request: Request) -> str:
    return "dataset" if request.url.path.startswith("/datasets/") else "model"


def query_text(request: Request, name: str, default: str = "") -> str:
    value = request.query_params.get(name, default)
    if len(value) > MAX_QUERY:
        raise BadRequest(f"the {name} parameter is too long (at most {MAX_QUERY} characters)")
    return value


def whole_number(request: Request, name: str, low: int) -> int | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    if not _DIGITS.fullmatch(raw) or int(raw) < low:
        raise BadRequest(f"invalid {name} parameter: '{raw[:40]}' (a whole number >= {low})")
    return int(raw)


def one_of(request: Request, name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.query_params.get(name) or default
    if value not in choices:
        raise BadRequest(f"invalid {name} parameter: '{value[:40]}' (one of: {', '.join(choices)})")
    return value
