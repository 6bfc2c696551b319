"""``python -m fastsio.cli``: the ``fastsio`` command (as ``python -m fastsio``)."""

import sys

from .main import main

sys.exit(main())
