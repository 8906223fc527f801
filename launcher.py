"""``python launcher.py --backbone debug --conf X.yaml``: the same entry point as ``astuner``.

Kept at the repository root for the VSCode launch configuration of the Math Agent tutorial.
"""

import sys

from astuner.cli import main

if __name__ == "__main__":
    sys.exit(main())
