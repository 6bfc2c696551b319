"""The core client against real servers: transports, namespaces, acks, binary, msgpack, rooms.

Every test talks to a real peer (Node socket.io 4.8 or python-socketio) on loopback.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from support.aio import connected, until

import fastsio
from fastsio import exceptions

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["node", "python"])
def peer(request: pytest.FixtureRequest, node_server: Any, py_server: Any) -> Any:
    return node_server if request.param == "node" else py_server


@pytest.mark.parametrize(
    "transports, expected",
    [
        (["websocket"], "websocket"),
        (["polling"], "polling"),
        (None, "websocket"),
        (["polling", "websocket"], "websocket"),  # polling first, then the upgrade
    ],
)
async def test_echo_and_ack_over_each_transport(
    peer: Any, transports: list[str] | None, expected: str
) -> None:
    server = peer()
    sio = fastsio.AsyncClient(reconnection=False)
    got: list[tuple[Any, ...]] = []
    sio.on("echo", lambda *args: got.append(args))
    async with connected(sio, server.url, transports=transports):
        await sio.emit("echo", ("text", 1, {"nested": [1.5, None, True]}))
        assert await sio.call("ack", ("x", 2), timeout=5) == ("x", 2)
        await until(lambda: got)
        assert got == [("text", 1, {"nested": [1.5, None, True]})]
        await until(lambda: sio.transport() == expected)
        # The upgrade must not lose or reorder anything sent around it.
        assert await sio.call("ack", "after", timeout=5) == "after"
    assert not sio.connected


async def test_websocket_first_falls_back_to_polling(node_server: Any) -> None:
    server = node_server(transports="polling")
    sio = fastsio.AsyncClient(reconnection=False)
    async with connected(sio, server.url):
        assert sio.transport() == "polling"
        assert await sio.call("ack", 7, timeout=5) == 7


async def test_websocket_only_fails_clearly_when_server_refuses_it(node_server: Any) -> None:
    server = node_server(transports="polling")
    sio = fastsio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda *a: errors.append(a))
    with pytest.raises(exceptions.ConnectionError):
        await sio.connect(server.url, transports=["websocket"])
    assert errors and not sio.connected


async def test_connection_refused_when_nothing_listens(unused_tcp_port: int) -> None:
    sio = fastsio.AsyncClient(reconnection=False)
    with pytest.raises(exceptions.ConnectionError):
        await sio.connect(f"http://127.0.0.1:{unused_tcp_port}")


async def test_auth_dict_and_callable_reevaluated_per_connect(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    await sio.connect(server.url, auth={"token": "a"})
    assert await sio.call("auth", timeout=5) == {"token": "a"}
    await sio.disconnect()

    calls = []

    def auth() -> dict[str, Any]:
        calls.append(1)
        return {"n": len(calls)}

    await sio.connect(server.url, auth=auth)
    assert await sio.call("auth", timeout=5) == {"n": 1}
    await sio.disconnect()
    await sio.connect(server.url, auth=auth)
    assert await sio.call("auth", timeout=5) == {"n": 2}
    await sio.disconnect()


async def test_connect_error_raises_and_calls_handler(peer: Any) -> None:
    server = peer()
    sio = fastsio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data: errors.append(data), namespace="/private")
    with pytest.raises(exceptions.ConnectionError, match="/private"):
        await sio.connect(server.url, namespaces=["/private"], auth={"token": "wrong"})
    assert errors and errors[0]["message"] == "unauthorized"
    assert not sio.connected

    await sio.connect(server.url, namespaces=["/private"], auth={"token": "secret"})
    assert sio.get_sid("/private")
    await sio.disconnect()


async def test_headers_and_query_reach_the_server(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    async with connected(sio, server.url + "/?room=blue", headers={"X-Custom": "yes"}):
        assert (await sio.call("headers", timeout=5))["x-custom"] == "yes"
        assert (await sio.call("query", timeout=5))["room"] == "blue"


async def test_several_namespaces_over_one_connection_and_catch_alls(peer: Any) -> None:
    server = peer()
    sio = fastsio.AsyncClient(reconnection=False)
    root: list[Any] = []
    chat_any: list[Any] = []
    everywhere: list[Any] = []
    sio.on("echo", lambda *a: root.append(a))
    sio.on("*", lambda event, *a: chat_any.append((event, a)), namespace="/chat")
    sio.on("*", lambda event, nsp, *a: everywhere.append((event, nsp, a)), namespace="*")
    await sio.connect(server.url, namespaces=["/", "/chat", "/private"],
                      auth={"token": "secret"})
    try:
        assert set(sio.namespaces) == {"/", "/chat", "/private"}
        assert sio.get_sid("/chat") != sio.get_sid("/")
        await sio.emit("echo", 1)
        await sio.emit("echo", 2, namespace="/chat")
        await sio.emit("echo", 3, namespace="/private")
        await until(lambda: root and chat_any and everywhere)
        assert root == [(1,)]
        assert chat_any == [("echo", (2,))]
        assert everywhere == [("echo", "/private", (3,))]
    finally:
        await sio.disconnect()


async def test_emit_to_unknown_namespace_raises(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    async with connected(sio, server.url):
        with pytest.raises(exceptions.BadNamespaceError):
            await sio.emit("echo", 1, namespace="/nope")


async def test_emit_callback_receives_ack_args(peer: Any) -> None:
    server = peer()
    sio = fastsio.AsyncClient(reconnection=False)
    acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    async with connected(sio, server.url):
        await sio.emit("ack", ("a", {"b": 1}), callback=lambda *a: acked.set_result(a))
        assert await asyncio.wait_for(acked, 5) == ("a", {"b": 1})


async def test_call_times_out_when_server_never_acks(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    async with connected(sio, server.url):
        with pytest.raises(exceptions.TimeoutError):
            await sio.call("never_acked", 1, timeout=0.3)
        with pytest.raises(asyncio.TimeoutError):  # also the builtin, as python-socketio users catch
            await sio.call("never_acked", 1, timeout=0.1)
        assert sio.stats()["pending_acks"] == 0


@pytest.mark.parametrize("parser", ["json", "msgpack"])
@pytest.mark.parametrize("async_handler", [False, True])
async def test_handler_return_value_acks_server_emit_with_ack(
    node_server: Any, parser: str, async_handler: bool
) -> None:
    server = node_server(parser=parser)
    sio = fastsio.AsyncClient(reconnection=False,
                              serializer="msgpack" if parser == "msgpack" else "default")
    answers: list[Any] = []

    if async_handler:
        @sio.on("question")
        async def question(payload: Any) -> Any:
            await asyncio.sleep(0.01)
            return "re", payload, b"\x01\x02"
    else:
        @sio.on("question")
        def question(payload: Any) -> Any:
            return "re", payload, b"\x01\x02"

    sio.on("answer", lambda args: answers.append(args))
    async with connected(sio, server.url):
        await sio.emit("ask", {"q": 1})
        await until(lambda: answers)
        assert answers == [["re", {"q": 1}, b"\x01\x02"]]


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_binary_both_ways_nested_and_in_acks(peer: Any, parser: str) -> None:
    server = peer(parser=parser)
    sio = fastsio.AsyncClient(reconnection=False,
                              serializer="msgpack" if parser == "msgpack" else "default")
    got: list[Any] = []
    sio.on("echo", lambda *a: got.append(a))
    async with connected(sio, server.url):
        payload = (b"\x00\xff", {"deep": [b"a", {"b": b"\x00" * 1000}]}, "text")
        await sio.emit("echo", payload)
        assert await sio.call("ack", payload, timeout=5) == payload
        await until(lambda: got)
        assert got == [payload]


async def test_binary_events_stream_in_order(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    got: list[Any] = []
    sio.on("bin_tick", lambda seq, data: got.append((seq, data)))
    async with connected(sio, server.url):
        await sio.emit("burst_binary", 200)
        await until(lambda: len(got) == 200)
        assert got == [(i, i.to_bytes(4, "big")) for i in range(200)]


async def test_msgpack_undefined_date_and_arraybuffer(node_server: Any) -> None:
    server = node_server(parser="msgpack")
    sio = fastsio.AsyncClient(reconnection=False, serializer="msgpack")
    got: dict[str, Any] = {}
    sio.on("undef", lambda *a: got.__setitem__("undef", a))
    sio.on("date", lambda d: got.__setitem__("date", d))
    sio.on("arraybuffer", lambda b: got.__setitem__("arraybuffer", b))
    async with connected(sio, server.url):
        await sio.emit("emit_undefined")
        await until(lambda: len(got) == 3)
        assert got["undef"] == (None, None, 1)
        assert got["date"] == datetime.datetime(
            2024, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
        assert got["arraybuffer"] == b"\x01\x02\x03"


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_server_disconnect_is_final(node_server: Any, parser: str) -> None:
    server = node_server(parser=parser)
    sio = fastsio.AsyncClient(reconnection_delay=0.05,
                              serializer="msgpack" if parser == "msgpack" else "default")
    reasons: list[str] = []
    sio.on("disconnect", lambda reason: reasons.append(reason))
    await sio.connect(server.url)
    await sio.emit("disconnect_me")
    await asyncio.wait_for(sio.wait(), 5)
    assert reasons == ["io server disconnect"]
    await asyncio.sleep(0.3)
    assert not sio.connected and reasons == ["io server disconnect"]


async def test_client_disconnect_reason_and_no_reconnect(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection_delay=0.05)
    reasons: list[str] = []
    sio.on("disconnect", lambda reason: reasons.append(reason))
    await sio.connect(server.url)
    await sio.disconnect()
    await asyncio.wait_for(sio.wait(), 2)
    await asyncio.sleep(0.2)
    assert reasons == ["io client disconnect"]
    assert not sio.connected


async def test_legacy_disconnect_handler_without_reason(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    calls: list[int] = []

    @sio.event
    def disconnect() -> None:
        calls.append(1)

    await sio.connect(server.url)
    await sio.disconnect()
    assert calls == [1]


async def test_rooms_membership_controls_broadcasts(peer: Any) -> None:
    server = peer()
    a = fastsio.AsyncClient(reconnection=False)
    b = fastsio.AsyncClient(reconnection=False)
    got_a: list[Any] = []
    got_b: list[Any] = []
    a.on("room_msg", lambda room, *args: got_a.append((room, args)))
    b.on("room_msg", lambda room, *args: got_b.append((room, args)))
    await a.connect(server.url)
    await b.connect(server.url)
    try:
        assert await a.call("join", "blue", timeout=5) is True
        await b.emit("to_room", ("blue", 1))
        await until(lambda: got_a)
        assert got_a == [("blue", (1,))]
        assert await a.call("leave", "blue", timeout=5) is True
        assert await b.call("join", "blue", timeout=5) is True
        await a.emit("to_room", ("blue", 2))
        await until(lambda: got_b)
        # b, now a member, got the second broadcast; a, no longer one, did not.
        await asyncio.sleep(0.2)
        assert got_b == [("blue", (2,))]
        assert got_a == [("blue", (1,))]
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_sync_and_async_handlers_start_in_arrival_order(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    order: list[Any] = []

    @sio.on("tick")
    async def tick(seq: int) -> None:
        order.append(seq)  # runs before the first await: the start order is the arrival order
        await asyncio.sleep(0)

    async with connected(sio, server.url):
        assert await sio.call("burst", 500, timeout=10) == 500
        await until(lambda: len(order) == 500)
        assert order == list(range(500))


async def test_handler_exception_is_logged_and_stream_continues(
    node_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    seen: list[int] = []

    @sio.on("tick")
    def tick(seq: int) -> None:
        seen.append(seq)
        if seq == 3:
            raise RuntimeError("boom")

    async with connected(sio, server.url):
        await sio.call("burst", 10, timeout=5)
        await until(lambda: len(seen) == 10)
        assert sio.connected
        assert "boom" in caplog.text or any("tick" in r.getMessage() for r in caplog.records)


async def test_namespace_class_handlers(node_server: Any) -> None:
    server = node_server()
    got: list[Any] = []

    class Chat(fastsio.AsyncClientNamespace):
        def on_connect(self) -> None:
            got.append("connect")

        async def on_echo(self, *args: Any) -> None:
            got.append(args)

        def on_disconnect(self, reason: str) -> None:
            got.append(reason)

    sio = fastsio.AsyncClient(reconnection=False)
    sio.register_namespace(Chat("/chat"))
    await sio.connect(server.url)
    assert set(sio.namespaces) == {"/chat"}
    await sio.emit("echo", "hi", namespace="/chat")
    await until(lambda: len(got) == 2)
    await sio.disconnect()
    assert got == ["connect", ("hi",), "io client disconnect"]


async def test_large_message_roundtrip(node_server: Any) -> None:
    server = node_server(max_payload=20_000_000)
    sio = fastsio.AsyncClient(reconnection=False)
    got: list[str] = []
    sio.on("big", lambda s: got.append(s))
    async with connected(sio, server.url):
        await sio.emit("big", 5_000_000)  # beyond aiohttp's default 4 MB cap
        await until(lambda: got, timeout=10)
        assert len(got[0]) == 5_000_000


async def test_emit_over_server_max_payload_is_a_clear_error(node_server: Any) -> None:
    server = node_server(max_payload=10_000)
    sio = fastsio.AsyncClient(reconnection=False)
    async with connected(sio, server.url):
        with pytest.raises(exceptions.PayloadTooLargeError):
            await sio.emit("echo", "x" * 20_000)
        assert sio.connected
        assert await sio.call("ack", 1, timeout=5) == 1


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_batch_handler_gets_events_in_order_interleaved_correctly(
    node_server: Any, transports: list[str]
) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    order: list[Any] = []
    batches: list[int] = []

    @sio.on("tick", batch=True)
    def ticks(items: list[Any]) -> None:
        batches.append(len(items))
        order.extend(items)

    sio.on("bin_tick", lambda n, b: order.append(("bin", n)))
    async with connected(sio, server.url, transports=transports):
        await sio.emit("burst", 2000)
        await sio.emit("burst_binary", 2)
        await sio.emit("burst", 3)
        await until(lambda: len(order) == 2005, timeout=10)
        assert order == [*range(2000), ("bin", 0), ("bin", 1), 0, 1, 2]
        assert sum(batches) == 2003 and len(batches) < 2003  # really batched


async def test_slow_async_handlers_pause_reading_instead_of_queueing(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False, max_pending_handlers=50)
    started: list[int] = []
    running = 0
    peak = 0

    @sio.on("tick")
    async def tick(seq: int) -> None:
        nonlocal running, peak
        started.append(seq)
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002)
        running -= 1

    async with connected(sio, server.url, transports=["websocket"]):
        await sio.emit("burst", 3000)
        await until(lambda: len(started) == 3000 and running == 0, timeout=30)
        assert started == list(range(3000))
        # Frames already read when the limit is hit are kept, not dispatched: the limit holds.
        assert peak <= 50
        assert sio.connected


async def test_many_calls_with_long_timeouts_keep_no_timer_state(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    async with connected(sio, server.url):
        for i in range(3000):
            assert await sio.call("ack", i, timeout=60) == i
        # Resolved acks do not pile up waiting for their (long) deadlines.
        assert len(sio._conn.deadlines.heap) <= 1025
        assert sio.stats()["pending_acks"] == 0
        with pytest.raises(exceptions.TimeoutError):
            await sio.call("never_acked", timeout=0.1)  # a short deadline still fires on time

