"""fastsio: a fast, dependable Socket.IO client with python-socketio's API.

``import fastsio as socketio`` runs python-socketio client code unchanged.

Owns the public names (re-exports, ``__all__``) and ``__version__``, and refuses to import
without the compiled core. Nothing is defined here; the command line (``fastsio.cli``) and the
test servers (``fastsio.testing``) are not imported.
"""

from __future__ import annotations

try:
    from ._ext import _core  # noqa: F401 - fail loudly without the compiled core
except ImportError as exc:  # pragma: no cover - exercised only by broken installs
    raise ImportError(
        "fastsio's compiled core (fastsio._ext._core) could not be imported. If this is a "
        "source checkout, install it (`pip install .`) and run from outside the checkout, whose "
        "fastsio/ has no compiled core; otherwise rebuild it against the installed picows with "
        f"`pip install --force-reinstall --no-binary fastsio fastsio`. ({exc})"
    ) from exc

from . import exceptions
from .async_client import AsyncClient
from .client import Client
from .namespace import AsyncClientNamespace, ClientNamespace
from .reasons import Reason
from .simple_client import AsyncSimpleClient, SimpleClient

__version__ = "0.1.0"
"""fastsio's version; the one source of the distribution's version too (pyproject.toml)."""

__all__ = [
    "AsyncClient",
    "Client",
    "AsyncSimpleClient",
    "SimpleClient",
    "AsyncClientNamespace",
    "ClientNamespace",
    "Reason",
    "exceptions",
    "__version__",
]
