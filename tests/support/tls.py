"""TLS for tests: a throwaway certificate authority (trustme) and the contexts built from it."""

from __future__ import annotations

import ssl

import pytest


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: the server's certificate for 127.0.0.1 is issued by a
    throwaway CA that the client trusts. The calling test is skipped without trustme."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx
