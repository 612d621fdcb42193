"""The URL convertors of the registry's routes (and of the web pages), registered with Starlette on import."""

from __future__ import annotations

from starlette.convertors import PathConvertor, StringConvertor, register_url_convertor


class AnyPathConvertor(PathConvertor):
    """Starlette's ``path`` with newlines too: a path holding CR/LF must reach validation (a 400), not miss a route."""

    regex = r"[\s\S]*"


class RepoTypeConvertor(StringConvertor):
    """The repo-type segment of /api/{t}/...: only these, so that /api/collections/... is never taken for a repo."""

    regex = "models|datasets|spaces"


register_url_convertor("anypath", AnyPathConvertor())
register_url_convertor("repotype", RepoTypeConvertor())
