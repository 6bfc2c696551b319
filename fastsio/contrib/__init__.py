"""Integrations with other tools, each an optional extra (``pip install fastsio[locust]``)."""
