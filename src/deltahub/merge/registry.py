"""Which merge methods exist: deltahub's own, and those other packages declare as entry points.

A package adds a method with one line in its metadata (``pyproject.toml``)::

    [project.entry-points."deltahub.merge_methods"]
    my_method = "my_package.merging:my_method"

where ``my_method`` is a :func:`~deltahub.merge.merge_method` (or a plain typed function, which is
wrapped under the entry point's name). It then appears in ``deltahub merge --method``, recipes,
``deltahub compose``, the web compose page and ``mergekit-yaml``. Methods are loaded on first use,
not when ``deltahub.merge`` is imported. A plugin that fails to load, takes a name already taken, or
declares a parameter that another method declares differently (the command line has one option
per name) is left out with a warning, never breaking the others.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points

from ..errors import InputError
from .params import conflicts
from .protocol import MergeMethod, merge_method

ENTRY_POINT_GROUP = "deltahub.merge_methods"
# deltahub's own methods: each module's BUILTIN tuple, in this order (the order of --method's choices)
_BUILTIN_MODULES = ("deltahub.merge.methods", "deltahub.merge.core_space", "deltahub.merge.iso")
# names the routes around a method use themselves: a parameter may not take one
RESERVED = frozenset(
    {"adapters", "out", "method", "weights", "weight", "base", "full", "dtype", "device", "overwrite", "quiet"}
    | {"allow_base_mismatch", "rank", "max_residual", "tasks", "max_k", "min_gain", "allow_harmful", "n", "limit"}
    | {"include_path", "held_out", "collection", "family", "min_pairs", "work", "candidates"}
)

_methods: dict[str, MergeMethod] = {}
_loaded = False
_lock = threading.RLock()


def _check(method: MergeMethod) -> str | None:
    """Why ``method`` cannot join the registry (None: it can)."""
    if method.name in _methods:
        return f"the name {method.name!r} is taken"
    reserved = sorted(set(method.params.model_fields) & RESERVED)
    if reserved:
        return f"parameter(s) {', '.join(reserved)} are deltahub's own options"
    problems = conflicts(method.params, {m.name: m.params for m in _methods.values()})
    return "; ".join(problems) or None


def register(method: MergeMethod) -> MergeMethod:
    """Make ``method`` available by name (in this process); a name taken or a clash is a ValueError."""
    with _lock:
        _load()
        if _methods.get(method.name) is method:
            return method
        problem = _check(method)
        if problem:
            raise ValueError(f"merge method {method.name}: {problem}")
        _methods[method.name] = method
        return method


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        for module in _BUILTIN_MODULES:
            for method in importlib.import_module(module).BUILTIN:
                problem = _check(method)
                if problem:  # a declaration bug in deltahub itself
                    raise TypeError(f"merge method {method.name}: {problem}")
                _methods[method.name] = method
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                found = ep.load()
                method = found if isinstance(found, MergeMethod) else merge_method(ep.name)(found)
                if method.name != ep.name:
                    raise ValueError(f"it is named {method.name!r}")
                problem = _check(method)
                if problem:
                    raise ValueError(problem)
            except Exception as exc:
                warnings.warn(
                    f"deltahub: merge method {ep.name} ({ep.value}) was not loaded: {exc}", RuntimeWarning, stacklevel=2
                )
                continue
            _methods[method.name] = method


def get_method(name: str | MergeMethod) -> MergeMethod:
    """The method called ``name``; an unknown name is a one-line error listing the others."""
    if isinstance(name, MergeMethod):
        return name
    _load()
    if name not in _methods:
        raise InputError(f"unknown merge method {name!r}", f"choose one of: {', '.join(_methods)}")
    return _methods[name]


def default_method() -> str:
    """The method deltahub merges with when none is named: its first."""
    _load()
    return next(iter(_methods))


def mergekit_methods() -> tuple[str, ...]:
    """The methods offered to mergekit and on the web compose page (run by the same code on both)."""
    _load()
    return tuple(name for name, m in _methods.items() if m.mergekit)


class _Registry(Mapping[str, MergeMethod]):
    """``METHODS``: every available method by name, loaded on first use."""

    def __getitem__(self, name: str) -> MergeMethod:
        _load()
        return _methods[name]

    def __iter__(self) -> Iterator[str]:
        _load()
        return iter(list(_methods))

    def __len__(self) -> int:
        _load()
        return len(_methods)

    def __repr__(self) -> str:
        return f"METHODS({', '.join(self)})"


METHODS: Mapping[str, MergeMethod] = _Registry()
