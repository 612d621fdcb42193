"""The embedded Hub-compatible registry: ``start_server`` runs it in a background thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .auth import Auth
from .quota import DEFAULT_LIMIT

__all__ = ["RunningServer", "start_server", "running_here", "Auth"]

_running: dict[str, RunningServer] = {}  # URL -> the registries this process serves (endpoint/ sends them its token)
_running_lock = threading.Lock()


@dataclass
class RunningServer:
    """A registry served by uvicorn in a daemon thread of this process."""

    url: str
    root: Path
    auth: Auth
    _server: object
    _thread: threading.Thread

    def stop(self) -> None:
        with _running_lock:
            if _running.get(self.url) is self:
                del _running[self.url]
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server.config.app.state.hub.store.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def running_here(url: str) -> RunningServer | None:
    """The registry this process serves at ``url``, if any."""
    with _running_lock:
        return _running.get(url.rstrip("/"))


def start_server(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    open_mode: bool = True,
    tokens: dict[str, str] | None = None,
    orgs: dict[str, list[str]] | None = None,
    page_size: int = 1000,
    upstream: str | None = None,
    upload_quota: int | None = DEFAULT_LIMIT,
    owner: bool = True,
) -> RunningServer:
    """Serve ``root`` on ``host:port`` (0 = an ephemeral port) and return once it accepts connections;
    repos it does not hold are read through from ``upstream`` (None: no read-through); ``upload_quota``:
    bytes each user may store in repos it cannot write (None: unlimited, see quota.py). ``owner``: it accepts
    this home's owner token (endpoint/owner.py), which this process's clients then send it. ``open_mode``
    lets requests without a token write; private repos need a reader's token in every mode."""
    import uvicorn

    from ..endpoint import owner as owner_file
    from .app import build_app
    from .protocol import server_config

    auth = Auth(open_mode=open_mode, tokens=dict(tokens or {}), orgs=dict(orgs or {}))
    if owner:
        auth.add_owner(owner_file.owner_token())
    app = build_app(Path(root), auth, page_size, upstream, upload_quota, owner_file.upstream_token)
    server = uvicorn.Server(server_config(app, host, port))
    thread = threading.Thread(target=server.run, name="deltahub-registry", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the embedded registry did not start")
        time.sleep(0.01)
    sock = server.servers[0].sockets[0].getsockname()
    running = RunningServer(
        url=f"http://{sock[0]}:{sock[1]}", root=Path(root), auth=auth, _server=server, _thread=thread
    )
    with _running_lock:
        _running[running.url] = running
    return running
