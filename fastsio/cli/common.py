"""What the ``fastsio`` commands share: exit codes, argument checks, one-line errors.

Owns the exit codes, the parsing of the options every command takes (URL, headers, auth,
transport), JSON for arguments and output, and how a failed connection is explained in one
line. It must not know any command (listen, emit, bench) or the argument parser's layout.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_CONNECT = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


# -- argument helpers ----------------------------------------------------------------------


def parse_json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # A bare word is taken as a string, as a shell user would expect: `emit URL ev hello`.
        if (
            text
            and text[0] not in '[{"'
            and not text[0].isdigit()
            and text not in ("true", "false", "null")
        ):
            return text
        raise UsageError(f"{what} is not valid JSON: {text!r}") from None


def _parse_headers(items: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or any(c in key for c in " \t\r\n"):
            raise UsageError(f"--header expects NAME:VALUE, got {item!r}")
        if "\r" in value or "\n" in value:
            raise UsageError(f"--header value contains a line break: {item!r}")
        headers[key.strip()] = value.strip()
    return headers


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise UsageError(f"URL must be http(s):// or ws(s):// with a host, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise UsageError(f"bad port in URL {url!r}") from None


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "serializer": "msgpack" if args.msgpack else "default",
        "eio_version": getattr(args, "eio_version", None),
    }


def connect_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "headers": _parse_headers(args.header or []),
        "transports": [args.transport] if args.transport else None,
        "wait_timeout": args.connect_timeout,
        "socketio_path": args.path,
    }
    if args.auth is not None:
        auth = parse_json_arg(args.auth, "--auth")
        if not isinstance(auth, dict):
            raise UsageError("--auth must be a JSON object")
        opts["auth"] = auth
    return opts


def check_common(args: argparse.Namespace) -> None:
    """Validate what argparse cannot, before anything touches the network."""
    if getattr(args, "url", None) is not None:
        _check_url(args.url)
    if args.connect_timeout <= 0:
        raise UsageError("--connect-timeout must be positive")
    connect_options(args)


# -- JSON and errors ----------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return {"$binary": base64.b64encode(raw).decode("ascii"), "size": len(raw)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "isoformat"):  # datetime (msgpack Date)
        return value.isoformat()
    return repr(value)


def status(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def one_line(text: str) -> str:
    return " ".join(text.split())


def refusal_text(data: Any) -> str:
    if isinstance(data, dict) and "message" in data:
        text = str(data["message"])
        if data.get("data") is not None:
            text += " " + json.dumps(jsonable(data["data"]), ensure_ascii=False)
        return text
    if data is None:
        return "refused"
    return str(data) if isinstance(data, str) else json.dumps(jsonable(data))


def connect_failure(url: str, exc: BaseException, refusals: dict[str, Any]) -> str:
    """One line saying why connecting failed: the server's refusal, or the innermost cause."""
    if refusals:
        why = "; ".join(
            f"namespace {nsp} refused: {refusal_text(data)}" for nsp, data in refusals.items()
        )
    else:
        inner: BaseException = exc
        while inner.__cause__ is not None:
            inner = inner.__cause__
        why = str(inner) or type(inner).__name__
        if inner is not exc and str(exc).startswith("Connection timed out"):
            why = str(exc)
    return one_line(f"fastsio: cannot connect to {url}: {why}")


def watch_connect_errors(sio: Any, namespaces: Sequence[str], also: Any = None) -> dict[str, Any]:
    """Record the last ``connect_error`` data per namespace (for a refusal, the server's
    reason); ``also(nsp, data)`` is called as well."""
    errors: dict[str, Any] = {}

    def make(nsp: str) -> Any:
        def on_connect_error(*data: Any) -> None:
            errors[nsp] = data[0] if len(data) == 1 else list(data) if data else None
            if also is not None:
                also(nsp, errors[nsp])

        return on_connect_error

    for nsp in namespaces:
        sio.on("connect_error", make(nsp), namespace=nsp)
    return errors


def refusals(sio: Any, errors: dict[str, Any]) -> dict[str, Any]:
    """The namespaces the server refused, with its reasons."""
    return {nsp: errors.get(nsp) for nsp in getattr(sio, "failed_namespaces", ())}
