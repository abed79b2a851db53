"""``python -m recdash``: see :mod:`recdash.cli`."""

import sys

from recdash.cli import main

sys.exit(main())
