"""Stdlib-only import hook, installed by ``deltahub_mergekit_hook.pth`` at interpreter start.

mergekit 0.1.5 has no plugin discovery, so this hook waits for the first import of
``mergekit.merge_methods`` (whose ``__init__`` fills mergekit's registry) and then imports the
plugin, which registers its methods and (``deltahub_mergekit.endpoint``) makes runs that use them
resolve repo ids through deltahub's endpoint. Until then it costs one ``find_spec`` check per import; it
imports neither torch nor mergekit, and removes itself after firing once.
Set ``DELTAHUB_MERGEKIT_DISABLE=1`` to switch it off.

It is a top-level module, not part of the ``deltahub_mergekit`` package, and imports only
``os`` and ``sys`` (loaded by every interpreter anyway): every Python start pays for it, and
importing the package as well cost about 2 ms more.
"""

import os
import sys

_TARGET = "mergekit.merge_methods"
DISABLE_ENV = "DELTAHUB_MERGEKIT_DISABLE"
PLUGIN_MODULES = ("deltahub_mergekit.method", "deltahub_mergekit.endpoint")


class _PluginLoader:
    """Wraps mergekit's own loader; loads the plugin right after the package has executed.

    A plain class rather than ``importlib.abc.Loader``: importing ``importlib.abc`` costs ~20 ms.
    """

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def create_module(self, spec):
        return self._wrapped.create_module(spec)

    def exec_module(self, module):
        self._wrapped.exec_module(module)  # mergekit's built-ins are registered now
        load_plugins()

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


class _Finder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        uninstall()  # one shot: the real finders answer from here on
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PluginLoader(spec.loader)
                return spec
        return None


_finder = _Finder()


def load_plugins():
    """Import the plugin modules; a broken plugin warns instead of breaking plain mergekit."""
    import importlib
    import warnings

    for name in PLUGIN_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:
            warnings.warn(f"deltahub_mergekit: could not load {name}: {exc!r}", stacklevel=2)


def install():
    """Arm the hook (or load at once if mergekit's registry is already imported)."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return
    if _TARGET in sys.modules:
        load_plugins()
    elif _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def uninstall():
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


install()
