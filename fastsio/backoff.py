"""The reconnection delay policy: pure math, the only place it is written down.

delay_n = min(delay_max, delay * 2**n), scaled by a random factor drawn uniformly from
[1 - f, 1 + f]. Unlike python-socketio (an absolute +-0.5 s that can go negative) and
socket.io-client (which clamps after the jitter, so a fleet retries in lock-step at the
maximum), the jitter is applied after the cap: retries at the cap stay spread out, and the
delay is never negative.

Owns that formula only; the loop that waits and retries is ``reconnection.py``. Pure: the
randomness is injectable, no clock, no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def reconnect_delay(
    attempt: int,
    delay: float,
    delay_max: float,
    randomization_factor: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before reconnection attempt number ``attempt`` (0-based)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    delay = max(0.0, float(delay))
    delay_max = max(0.0, float(delay_max))
    factor = min(max(float(randomization_factor), 0.0), 1.0)
    # 2.0**attempt overflows a float for huge attempt counts; the cap is reached long before.
    base = min(delay_max, delay * 2.0 ** min(attempt, 64))
    if factor:
        base *= 1.0 - factor + 2.0 * factor * rand()
    return max(0.0, base)
