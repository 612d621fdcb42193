"""deltahub's mergekit plugin: GAM, KnOTS and TSV-M as mergekit merge methods.

Nothing heavy is imported here: ``hook`` (run from a ``.pth`` file at interpreter start) imports
this package, and start-up must stay cheap. The methods live in ``method`` (torch + mergekit).
"""

PLUGIN_MODULES = ("deltahub_mergekit.method",)
DISABLE_ENV = "DELTAHUB_MERGEKIT_DISABLE"
