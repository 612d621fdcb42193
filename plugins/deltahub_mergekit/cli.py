"""``deltahub-mergekit-yaml``: mergekit-yaml with the deltahub methods registered explicitly.

The fallback for environments where ``.pth`` hooks do not run (``python -S``, some embedded or
frozen interpreters, the hook switched off); same arguments as ``mergekit-yaml``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from mergekit.scripts.run_yaml import main as run_yaml

    import deltahub_mergekit.endpoint
    import deltahub_mergekit.method  # noqa: F401 - registers deltahub's methods (plugins' included)

    run_yaml.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="deltahub-mergekit-yaml")


if __name__ == "__main__":
    main()
