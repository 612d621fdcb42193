"""``deltahub hub serve``: run the registry in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError


@click.group("hub")
def hub_group() -> None:
    """Run the embedded Hub-compatible registry."""


@hub_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told otherwise).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None, help="Data folder.")
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='JSON file {"tokens": {TOKEN: USER}, "orgs": {USER: [ORG]}}.')
@click.option("--token", "token_pairs", multiple=True, help="TOKEN=USER (repeatable).")
@click.option("--open", "open_mode", is_flag=True, help="No tokens needed to write (single-user laptop).")
def serve(host: str, port: int, root: Path | None, tokens_file: Path | None, token_pairs: tuple[str, ...], open_mode: bool) -> None:
    """Serve the registry until interrupted."""
    import uvicorn

    from ..hub import registry_root
    from .app import build_app
    from .auth import Auth
    from .protocol import server_config

    auth = Auth.from_file(tokens_file, open_mode) if tokens_file else Auth(open_mode=open_mode)
    for pair in token_pairs:
        if "=" not in pair:
            raise InputError(f"--token {pair!r} is not TOKEN=USER", "write it as --token SECRET=alice")
        tok, user = pair.split("=", 1)
        auth.tokens[tok] = user
    if not auth.open_mode and not auth.tokens:
        raise InputError("no tokens configured, so nobody could write", "pass --token SECRET=USER, --tokens FILE or --open")
    root = root or registry_root()
    click.echo(f"deltahub registry at http://{host}:{port} (root {root}, {'open' if auth.open_mode else 'tokens'} mode)")
    uvicorn.Server(server_config(build_app(root, auth), host, port)).run()
