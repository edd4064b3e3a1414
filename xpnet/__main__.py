"""``python -m xpnet`` runs the command line, exactly like the ``xpnet`` script."""

import sys

from .cli import main

sys.exit(main())
