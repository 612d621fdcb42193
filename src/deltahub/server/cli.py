"""``deltahub hub serve``: run the registry in the foreground."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..errors import InputError
from .quota import DEFAULT_QUOTA

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


@click.group("hub")
def hub_group() -> None:
    """Run the embedded Hub-compatible registry."""


@hub_group.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told otherwise)."
)
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None, help="Data folder.")
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='JSON file {"tokens": {TOKEN: USER}, "orgs": {USER: [ORG]}}.',
)
@click.option("--token", "token_pairs", multiple=True, help="TOKEN=USER (repeatable).")
@click.option(
    "--open",
    "open_mode",
    is_flag=True,
    help="Writes need no token (private repos still need a reader's token).",
)
@click.option(
    "--upstream",
    default=None,
    help="Hub to read through to for repos not held here (default: the saved setting, else https://huggingface.co).",
)
@click.option("--no-upstream", is_flag=True, help="Serve only what is held here.")
@click.option(
    "--upload-quota",
    default=DEFAULT_QUOTA,
    show_default=True,
    help="Bytes each user may upload into repos it cannot write (pull requests): e.g. 500MB, 2GiB, 0, unlimited.",
)
def serve(
    host: str,
    port: int,
    root: Path | None,
    tokens_file: Path | None,
    token_pairs: tuple[str, ...],
    open_mode: bool,
    upstream: str | None,
    no_upstream: bool,
    upload_quota: str,
) -> None:
    """Serve the registry until interrupted.

    It always accepts this home's owner token (`deltahub hub token`), and the tokens of --token/--tokens.
    Without --open every write needs a token; in every mode a private repo is served only to a token of
    someone who may read it.
    """
    import uvicorn

    from ..endpoint import owner, registry_root
    from ..endpoint.settings import check_url, load
    from .app import build_app
    from .protocol import server_config
    from .quota import format_size, parse_size

    try:
        quota = parse_size(upload_quota)
    except ValueError:
        raise InputError(
            f"--upload-quota {upload_quota!r} is not a size",
            "write it as a number with a unit (500MB, 10GB, 2GiB), 0, or unlimited",
        ) from None
    auth = _auth(tokens_file, token_pairs, open_mode)
    auth.add_owner(owner.owner_token())
    if upstream and no_upstream:
        raise InputError("--upstream and --no-upstream contradict each other", "pass one of them")
    upstream = None if no_upstream else check_url(upstream, "upstream") if upstream else load().upstream
    root = root or registry_root()
    sock = _bind(host, port) if port == 0 else None  # the port must be known to record it
    if sock is not None:
        port = sock.getsockname()[1]
    urls = owner.served_urls(host, port)
    mode = "open mode: writes need no token" if auth.open_mode else "token mode"
    click.echo(
        f"deltahub registry at {urls[0]} (root {root}, {mode}, "
        f"{'upstream ' + upstream if upstream else 'no upstream'}, "
        f"upload quota {'unlimited' if quota is None else format_size(quota)})"
    )
    click.echo(
        f"owner: {auth.owner} (may read and write every namespace); its token: deltahub hub token "
        "(deltahub's own commands send it here by themselves); private repos are served only with a reader's token"
    )
    app = build_app(root, auth, upstream=upstream, upload_quota=quota, upstream_token=owner.upstream_token)
    owner.record_served(urls, root, list(auth.tokens))
    try:
        uvicorn.Server(server_config(app, host, port)).run(sockets=[sock] if sock is not None else None)
    finally:
        owner.forget_served(urls)


def _auth(tokens_file: Path | None, token_pairs: tuple[str, ...], open_mode: bool):
    """The users of --tokens and --token; every malformed one is a one-line error naming the fix."""

    from ..endpoint.owner import OWNER
    from .auth import Auth

    auth = Auth(open_mode=open_mode)
    if tokens_file is not None:
        try:
            auth = Auth.from_file(tokens_file, open_mode)
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split("\n")[0][:120]
            raise InputError(
                f"--tokens {tokens_file}: {why}",
                'give a readable JSON file {"tokens": {"SECRET": "alice"}, "orgs": {"alice": ["lab"]}}',
            ) from None
    for pair in token_pairs:
        tok, _, user = pair.partition("=")
        if not tok.strip() or not _USER.fullmatch(user):
            raise InputError(
                f"--token {pair[:80]!r} is not TOKEN=USER", "write it as --token SECRET=alice (a user name after '=')"
            )
        auth.tokens[tok.strip()] = user
    for tok, user in auth.tokens.items():
        if not isinstance(tok, str) or not isinstance(user, str) or not tok or not _USER.fullmatch(user):
            raise InputError(
                f"--tokens {tokens_file}: {str(user)[:60]!r} is not a user name", "use letters, digits, -_."
            )
        if user == OWNER:
            raise InputError(
                f"the user name {OWNER!r} is the registry owner's",
                "give that user another name; the owner signs in with the token of: deltahub hub token",
            )
    return auth


def _bind(host: str, port: int):
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog from now on: the URL printed is ready at once
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", "choose another --host/--port"
        ) from None
    return sock


@hub_group.command("token")
def token() -> None:
    """Print this home's owner token (for `hf auth login`, the registry's sign-in page, another machine).

    Whoever holds it may read and write every repo of the registries this home serves. deltahub's own
    commands, its Python API and the mergekit plugin send it to those registries without being told.
    """
    from ..endpoint import owner

    value = owner.owner_token()
    click.echo(value)
    click.echo(
        f"owner namespace: {owner.OWNER}; token file: {owner.token_path()} (delete it to make a new token)", err=True
    )


@hub_group.command("use")
@click.argument("endpoint", required=False)
@click.option("--upstream", default=None, help="Where the embedded registry reads through to (saved).")
@click.option("--no-upstream", is_flag=True, help="The embedded registry serves only what it holds (saved).")
def use(endpoint: str | None, upstream: str | None, no_upstream: bool) -> None:
    """Save the registry every deltahub process (and mergekit with deltahub's methods) uses: `embedded` or a URL.

    Without arguments, print the endpoint in use and how it was chosen. DELTAHUB_ENDPOINT, when set,
    overrides the saved setting.
    """
    from ..endpoint import describe
    from ..endpoint.settings import save

    if upstream and no_upstream:
        raise InputError("--upstream and --no-upstream contradict each other", "pass one of them")
    changes: dict = {}
    if endpoint is not None:
        changes["endpoint"] = endpoint
    if upstream or no_upstream:
        changes["upstream"] = None if no_upstream else upstream
    if changes:
        click.echo(f"saved to {save(**changes)}")
    click.echo(f"endpoint: {describe()}")
