"""``python -m fastsio``: the ``fastsio`` command."""

import sys

from .cli import main

sys.exit(main())
