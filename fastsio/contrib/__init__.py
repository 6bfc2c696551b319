"""Integrations with other tools, each an optional extra (``pip install fastsio[locust]``).

Each module owns one integration and uses the library through its public API (plus the
synchronous ``AsyncClient._emit``); nothing in fastsio imports ``contrib``.
"""
