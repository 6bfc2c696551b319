"""The reconnection delay policy, as pure math."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsio.backoff import reconnect_delay


def test_doubles_from_delay_up_to_the_cap_without_jitter() -> None:
    delays = [reconnect_delay(n, 1, 5, 0) for n in range(6)]
    assert delays == [1, 2, 4, 5, 5, 5]


def test_jitter_bounds_use_the_extremes_of_the_random_source() -> None:
    assert reconnect_delay(0, 2, 10, 0.5, rand=lambda: 0.0) == pytest.approx(1.0)
    assert reconnect_delay(0, 2, 10, 0.5, rand=lambda: 1.0) == pytest.approx(3.0)


@given(
    attempt=st.integers(0, 10_000),
    delay=st.floats(0, 100, allow_nan=False),
    delay_max=st.floats(0, 1000, allow_nan=False),
    factor=st.floats(0, 1, allow_nan=False),
    r=st.floats(0, 1, allow_nan=False),
)
def test_delay_stays_within_the_jittered_capped_range(
    attempt: int, delay: float, delay_max: float, factor: float, r: float
) -> None:
    d = reconnect_delay(attempt, delay, delay_max, factor, rand=lambda: r)
    base = min(delay_max, delay * 2.0 ** min(attempt, 64))
    assert d >= 0
    assert base * (1 - factor) - 1e-9 <= d <= base * (1 + factor) + 1e-9


def test_delays_at_the_cap_stay_spread_out() -> None:
    # A fleet retrying at the maximum must not do so in lock-step (socket.io-client clamps after
    # the jitter, so every client waits exactly delay_max).
    rng = random.Random(1)
    delays = [reconnect_delay(20, 1, 5, 0.5, rand=rng.random) for _ in range(1000)]
    assert min(delays) < 3.0 and max(delays) > 7.0
    assert len({round(d, 3) for d in delays}) > 900


def test_never_negative_even_with_small_delays() -> None:
    # python-socketio's absolute +-0.5 s jitter goes negative for a 0.1 s delay.
    assert all(reconnect_delay(0, 0.1, 5, 1.0, rand=lambda: 0.0) >= 0 for _ in range(10))


def test_rejects_negative_attempt() -> None:
    with pytest.raises(ValueError):
        reconnect_delay(-1, 1, 5, 0.5)
