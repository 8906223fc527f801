"""``python -m astuner`` is the ``astuner`` command."""

import sys

from astuner.cli import main

sys.exit(main())
