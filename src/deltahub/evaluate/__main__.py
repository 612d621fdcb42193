"""``python -m deltahub.evaluate ...`` (e.g. under ``torchrun`` or ``accelerate launch -m deltahub.evaluate``)."""

from ..cli import main

if __name__ == "__main__":
    import sys

    main(["eval", *sys.argv[1:]])
