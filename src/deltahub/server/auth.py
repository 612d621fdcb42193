"""Who is asking: bearer tokens that own namespaces, and the registry's owner.

Reading a private repo always needs a token of someone allowed to read it, in every mode. Open mode
(``hub serve --open``) only lets requests without a token write, under the name ``OPEN_USER``; it never
lets them read what is private. The owner (the user whose DELTAHUB_HOME started the registry, with the
owner token of endpoint/owner.py) may read and write every namespace of it: the demo and recipes publish
under namespaces of their own (demo/, ...), all of them the owner's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

OPEN_USER = "local"  # the name writes without a token are made under in open mode (and the owner's name)


@dataclass
class Auth:
    """``tokens`` maps a bearer token to its user name; a user owns its own namespace and ``orgs``;
    ``owner`` may read and write every namespace."""

    open_mode: bool = False
    tokens: dict[str, str] = field(default_factory=dict)
    orgs: dict[str, list[str]] = field(default_factory=dict)
    fullnames: dict[str, str] = field(default_factory=dict)  # display names of users and orgs (whoami)
    private_orgs: set[str] = field(default_factory=set)  # namespaces whose new repos are private by default
    owner: str | None = None

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

    def add_owner(self, token: str, name: str = OPEN_USER) -> None:
        """Accept ``token`` as the registry owner's."""
        self.tokens[token] = name
        self.owner = name

    def fullname(self, name: str) -> str:
        return self.fullnames.get(name, name)

    def private_by_default(self, ns: str) -> bool:
        """Whether a repo created under ``ns`` without a visibility is private (an organisation setting on the Hub)."""
        return ns in self.private_orgs

    def user(self, authorization: str | None) -> str | None:
        """The user a valid bearer token names; None without one (in every mode: reading is decided on this)."""
        token = None
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if token and token in self.tokens:
            return self.tokens[token]
        return None

    def writer(self, user: str | None) -> str | None:
        """Whom a write is made as: the token's user, else ``OPEN_USER`` in open mode."""
        return user if user is not None else (OPEN_USER if self.open_mode else None)

    def namespaces(self, user: str | None) -> list[str]:
        return [] if user is None else [user, *self.orgs.get(user, [])]

    def member(self, user: str | None, ns: str) -> bool:
        """``user`` (a token's user) belongs to ``ns``: its own, one of its orgs, or any if it is the owner."""
        return user is not None and (user == self.owner or ns in self.namespaces(user))

    def can_write(self, user: str | None, ns: str) -> bool:
        return self.open_mode or self.member(user, ns)

    def can_read(self, user: str | None, ns: str, private: bool) -> bool:
        return not private or self.member(user, ns)
