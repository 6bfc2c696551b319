"""The ``fastsio`` command: listen to a server, emit/call an event, benchmark a server.

Exit codes: 0 success; 1 connection failed or lost for good; 2 bad arguments; 3 timeout
(no ack in time, or ``--count`` not reached within ``--duration``); 130 interrupted.
A user error is reported in one line on stderr, never with a traceback.

Layout (imports go one way, downwards): ``main`` (parser, dispatch) -> ``listen`` (listen,
emit, call) and ``bench`` -> ``common`` (exit codes, options, one-line errors). Nothing here
is imported by the library itself; the library is imported lazily, inside the commands.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
