"""deltahub's mergekit plugin: deltahub's merge methods (GAM, KnOTS, TSV-M, Core Space, Iso-C/CTS, ...).

Every method deltahub offers to mergekit is registered, plugins' included.

The methods live in ``method`` (torch + mergekit); the stdlib-only start-up hook that registers
them is the top-level module ``deltahub_mergekit_hook`` (run from a ``.pth`` file).
"""

from deltahub_mergekit_hook import DISABLE_ENV, PLUGIN_MODULES

__all__ = ["DISABLE_ENV", "PLUGIN_MODULES"]
