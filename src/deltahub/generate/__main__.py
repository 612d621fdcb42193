"""``python -m deltahub.generate ...`` (e.g. under ``torchrun`` or ``accelerate launch -m deltahub.generate``)."""

from ..cli import main

if __name__ == "__main__":
    import sys

    main(["generate", *sys.argv[1:]])
