"""The registry's HTTP routes, one module per resource; ``ROUTES`` in the order Starlette tries them."""

from __future__ import annotations

from .. import convertors  # noqa: F401  (before any Route is built)
from ..xet import routes as xet
from . import collections, discussions, files, lfs, refs, repos

ROUTES = [
    *repos.ROUTES,
    *files.ROUTES,
    *refs.ROUTES,
    *lfs.ROUTES,
    *xet.ROUTES,
    *discussions.ROUTES,
    *collections.ROUTES,
    *repos.FALLBACK_ROUTES,
]
