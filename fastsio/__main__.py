"""``python -m fastsio``: the ``fastsio`` command (``fastsio.cli``); nothing else lives here."""

import sys

from .cli import main

sys.exit(main())
