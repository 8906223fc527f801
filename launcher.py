"""``python launcher.py --backbone debug --conf X.yaml``: the same entry point as ``astuner``.

Kept at the repository root for debugger launch configurations that name a ``program`` (the
tutorial's ``.vscode/launch.json`` runs the module ``astuner.cli`` instead). It passes
``sys.argv`` to the same ``main``, so every flag, ``--debugpy`` and ``--wait-for-client``
included, behaves as with ``astuner``.
"""

import sys

from astuner.cli import main

if __name__ == "__main__":
    sys.exit(main())
