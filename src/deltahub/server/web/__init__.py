"""Web pages for people on the registry's own port: browse, inspect and compose deltas.

``install`` appends the page routes after the API's. Starlette takes the first route that matches,
so every API URL keeps its handler (``/NS/NAME/resolve/...``, ``/api/...``, the LFS endpoints) and
the pages get only what the API leaves: ``/``, ``/NS/NAME``, ``/datasets/NS/NAME``, their tabs
(``/NS/NAME/discussions[/N]`` among them), ``/collections[/NS/SLUG]``, ``/compose``, ``/login``.
Pages read with the API's validation and visibility rules.
"""

from __future__ import annotations

from starlette.applications import Starlette


def install(app: Starlette) -> None:
    """Add the pages to an app built by ``deltahub.server.app.build_app`` (its ``state.hub``)."""
    from .routes import Pages

    app.router.routes.extend(Pages(app.state.hub).routes())
