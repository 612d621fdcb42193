"""Who is asking: bearer tokens that own namespaces, or open mode for a single-user laptop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

OPEN_USER = "local"


@dataclass
class Auth:
    """``tokens`` maps a bearer token to its user name; a user owns its own namespace and ``orgs``."""

    open_mode: bool = True
    tokens: dict[str, str] = field(default_factory=dict)
    orgs: dict[str, list[str]] = field(default_factory=dict)
    fullnames: dict[str, str] = field(default_factory=dict)  # display names of users and orgs (whoami)
    private_orgs: set[str] = field(default_factory=set)  # namespaces whose new repos are private by default

    @classmethod
    def from_file(cls, path: Path, open_mode: bool = False) -> Auth:
        """Tokens file: JSON ``{"tokens": {TOKEN: USER}, "orgs": {USER: [ORG, ...]}}``, optionally
        ``"fullnames": {NAME: DISPLAY NAME}`` and ``"private_by_default": [NAMESPACE, ...]``."""
        data = json.loads(Path(path).read_text())
        return cls(
            open_mode=open_mode,
            tokens=dict(data.get("tokens", {})),
            orgs=dict(data.get("orgs", {})),
            fullnames=dict(data.get("fullnames", {})),
            private_orgs=set(data.get("private_by_default", [])),
        )

    def fullname(self, name: str) -> str:
        return self.fullnames.get(name, name)

    def private_by_default(self, ns: str) -> bool:
        """Whether a repo created under ``ns`` without a visibility is private (an organisation setting on the Hub)."""
        return ns in self.private_orgs

    def user(self, authorization: str | None) -> str | None:
        token = None
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if token and token in self.tokens:
            return self.tokens[token]
        return OPEN_USER if self.open_mode else None

    def namespaces(self, user: str | None) -> list[str]:
        return [] if user is None else [user, *self.orgs.get(user, [])]

    def can_write(self, user: str | None, ns: str) -> bool:
        return self.open_mode or (user is not None and ns in self.namespaces(user))

    def can_read(self, user: str | None, ns: str, private: bool) -> bool:
        return not private or self.open_mode or (user is not None and ns in self.namespaces(user))
