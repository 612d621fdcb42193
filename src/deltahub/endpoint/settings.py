"""Which registry deltahub talks to, and where the embedded registry reads through to.

The one rule, in order: ``DELTAHUB_ENDPOINT``, else the setting saved by ``deltahub hub use``
(``$DELTAHUB_HOME/settings.json``), else the embedded registry. The embedded registry's upstream
(repos it does not hold are fetched from there) is the saved setting, else the public Hub.
Stdlib + pydantic only: the mergekit plugin reads this before any Hub client is configured.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..errors import InputError
from ..home import home

ENDPOINT_ENV = "DELTAHUB_ENDPOINT"
EMBEDDED = "embedded"
DEFAULT_UPSTREAM = "https://huggingface.co"
CHANGE_HINT = "change it with DELTAHUB_ENDPOINT=URL, or save one with: deltahub hub use URL|embedded"


def check_url(url: str, what: str = "endpoint") -> str:
    """An http(s) URL with a host, without its trailing slash."""
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise InputError(
            f"{what} {url!r} is not an http(s) URL", f"give the {what} as http://HOST:PORT or https://HOST"
        )
    return url.strip().rstrip("/")


class Settings(BaseModel):
    """``settings.json``: ``endpoint`` is ``embedded`` or a URL; ``upstream`` a URL, or null for none."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = EMBEDDED
    upstream: str | None = DEFAULT_UPSTREAM

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return v if v == EMBEDDED else check_url(v)

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v, "upstream")


def settings_path() -> Path:
    return home() / "settings.json"


def load() -> Settings:
    """The saved settings (defaults where nothing is saved); a broken file is a one-line error."""
    path = settings_path()
    if not path.is_file():
        return Settings()
    try:
        return Settings.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise InputError(
            f"{path} is not valid deltahub settings: {first}",
            "fix or delete it, or save again with: deltahub hub use embedded|URL",
        ) from None


def save(**changes) -> Path:
    """Merge ``changes`` (``endpoint``, ``upstream``) into the saved settings, written atomically."""
    from ..atomic import atomic_write_text

    path = settings_path()
    current = load().model_dump(exclude_unset=True)
    merged = Settings.model_validate({**current, **changes})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(merged.model_dump(exclude_unset=True), indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Choice:
    """The endpoint this process uses, and why (for messages that tell the user how to change it)."""

    endpoint: str  # EMBEDDED or a URL
    source: str  # "DELTAHUB_ENDPOINT", "the setting saved in PATH", "default" or "the caller"
    upstream: str | None  # the embedded registry's upstream (None: read-through off)


def choose() -> Choice:
    """Apply the rule: ``DELTAHUB_ENDPOINT``, else the saved setting, else the embedded registry."""
    saved = load()
    env = os.environ.get(ENDPOINT_ENV, "").strip()
    if env:
        endpoint = EMBEDDED if env == EMBEDDED else check_url(env, ENDPOINT_ENV)
        return Choice(endpoint, ENDPOINT_ENV, saved.upstream)
    if settings_path().is_file() and "endpoint" in saved.model_fields_set:
        return Choice(saved.endpoint, f"the setting saved in {settings_path()}", saved.upstream)
    return Choice(EMBEDDED, "default", saved.upstream)
