"""deltahub's mergekit plugin: GAM, KnOTS and TSV-M as mergekit merge methods.

The methods live in ``method`` (torch + mergekit); the stdlib-only start-up hook that registers
them is the top-level module ``deltahub_mergekit_hook`` (run from a ``.pth`` file).
"""

from deltahub_mergekit_hook import DISABLE_ENV, PLUGIN_MODULES

__all__ = ["DISABLE_ENV", "PLUGIN_MODULES"]
