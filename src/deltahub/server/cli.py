"""``deltahub hub serve``: run the registry in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .quota import DEFAULT_QUOTA


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
@click.option("--open", "open_mode", is_flag=True, help="No tokens needed to write (single-user laptop).")
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
    """Serve the registry until interrupted."""
    import uvicorn

    from ..endpoint import registry_root
    from ..endpoint.settings import check_url, load
    from .app import build_app
    from .auth import Auth
    from .protocol import server_config
    from .quota import format_size, parse_size

    try:
        quota = parse_size(upload_quota)
    except ValueError:
        raise InputError(
            f"--upload-quota {upload_quota!r} is not a size",
            "write it as a number with a unit (500MB, 10GB, 2GiB), 0, or unlimited",
        ) from None
    auth = Auth.from_file(tokens_file, open_mode) if tokens_file else Auth(open_mode=open_mode)
    for pair in token_pairs:
        if "=" not in pair:
            raise InputError(f"--token {pair!r} is not TOKEN=USER", "write it as --token SECRET=alice")
        tok, user = pair.split("=", 1)
        auth.tokens[tok] = user
    if not auth.open_mode and not auth.tokens:
        raise InputError(
            "no tokens configured, so nobody could write", "pass --token SECRET=USER, --tokens FILE or --open"
        )
    if upstream and no_upstream:
        raise InputError("--upstream and --no-upstream contradict each other", "pass one of them")
    upstream = None if no_upstream else check_url(upstream, "upstream") if upstream else load().upstream
    root = root or registry_root()
    mode = "open" if auth.open_mode else "tokens"
    click.echo(
        f"deltahub registry at http://{host}:{port} (root {root}, {mode} mode, "
        f"{'upstream ' + upstream if upstream else 'no upstream'}, "
        f"upload quota {'unlimited' if quota is None else format_size(quota)})"
    )
    uvicorn.Server(server_config(build_app(root, auth, upstream=upstream, upload_quota=quota), host, port)).run()


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
