"""``python -m xpnet.cli`` runs the command line, like ``python -m xpnet``."""

import sys

from . import main

sys.exit(main())
