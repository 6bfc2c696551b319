#!/usr/bin/env node
// Socket.IO 4.8 test peer for the fastsio suite. The behaviour contract is in README.md (same
// directory); tests/peers/pyserver.py implements the same contract on python-socketio.
//
//   node server.js [--port N] [--host H] [--parser json|msgpack] [--recovery]
//                  [--ping-interval MS] [--ping-timeout MS] [--transports websocket,polling]
//                  [--max-payload BYTES] [--adapter memory|base|cluster] [--stdin-watch]
//                  [--server-version 2|3|4] [--allow-eio3] [--root-auth] [--firehose N]
//
// Prints exactly one line, "LISTENING <port>", on stdout once it accepts connections; everything
// else goes to stderr.
"use strict";

const http = require("http");

function usage(msg) {
  process.stderr.write(`server.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    port: 0,
    host: "127.0.0.1",
    parser: "json",
    recovery: false,
    pingInterval: 25000,
    pingTimeout: 20000,
    transports: ["polling", "websocket"],
    maxPayload: 1e6,
    adapter: "memory",
    stdinWatch: false,
    serverVersion: 4,
    allowEIO3: false,
    rootAuth: false,
    firehose: null,
  };
  const int = (name, v) => {
    if (v === undefined || !/^\d+$/.test(v)) usage(`${name} needs a non-negative integer`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case "--port": opts.port = int(a, argv[++i]); break;
      case "--host": opts.host = argv[++i]; break;
      case "--parser": opts.parser = argv[++i]; break;
      case "--recovery": opts.recovery = true; break;
      case "--ping-interval": opts.pingInterval = int(a, argv[++i]); break;
      case "--ping-timeout": opts.pingTimeout = int(a, argv[++i]); break;
      case "--max-payload": opts.maxPayload = int(a, argv[++i]); break;
      case "--stdin-watch": opts.stdinWatch = true; break;
      case "--adapter": opts.adapter = argv[++i]; break;
      case "--server-version": opts.serverVersion = int(a, argv[++i]); break;
      case "--allow-eio3": opts.allowEIO3 = true; break;
      case "--root-auth": opts.rootAuth = true; break;
      case "--firehose": opts.firehose = int(a, argv[++i]); break;
      case "--transports":
        opts.transports = (argv[++i] || "").split(",").map((s) => s.trim()).filter(Boolean);
        for (const t of opts.transports) {
          if (t !== "websocket" && t !== "polling") usage(`unknown transport ${t}`);
        }
        if (!opts.transports.length) usage("--transports needs at least one transport");
        break;
      default:
        usage(`unknown argument ${a}`);
    }
  }
  if (opts.parser !== "json" && opts.parser !== "msgpack") usage(`unknown parser ${opts.parser}`);
  if (!["memory", "base", "cluster"].includes(opts.adapter)) usage(`unknown adapter ${opts.adapter}`);
  if (![2, 3, 4].includes(opts.serverVersion)) usage(`unknown server version ${opts.serverVersion}`);
  if (opts.serverVersion !== 4 && (opts.recovery || opts.adapter !== "memory")) {
    usage("--recovery and --adapter need --server-version 4");
  }
  if (opts.serverVersion === 2 && opts.allowEIO3) usage("--allow-eio3 needs --server-version 3 or 4");
  if (opts.firehose !== null && opts.parser !== "json") usage("--firehose needs --parser json");
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

const serverOptions = {
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  transports: opts.transports,
  maxHttpBufferSize: opts.maxPayload,
  // A test peer must never linger: no CORS, no serving of the client bundle.
  serveClient: false,
};
if (opts.allowEIO3) serverOptions.allowEIO3 = true;
if (opts.parser === "msgpack") {
  // socket.io-msgpack-parser 2.x is the one for Socket.IO 2.x servers (CONNECT, DISCONNECT and
  // ERROR packets as JSON text, the others msgpack); 3.x for Socket.IO >= 3.
  serverOptions.parser = require(opts.serverVersion === 2
    ? "socket.io-msgpack-parser-v2" : "socket.io-msgpack-parser");
}
if (opts.recovery) {
  serverOptions.connectionStateRecovery = {
    maxDisconnectionDuration: 120000,
    skipMiddlewares: true,
  };
}

// Adapters for the offset tests. "memory" is socket.io's default (SessionAwareAdapter when
// recovery is on: it appends an offset to ack-less, non-volatile events). "base" is the plain
// in-memory Adapter, as classic adapters (e.g. the Redis one) extend it: no offsets, yet the
// server still sends a pid. "cluster" is a ClusterAdapterWithHeartbeat publishing to nobody:
// broadcasts carry the publish offset, `io.local` emits carry none.
if (opts.adapter === "base") {
  serverOptions.adapter = require("socket.io-adapter").Adapter;
} else if (opts.adapter === "cluster") {
  const { ClusterAdapterWithHeartbeat } = require("socket.io-adapter");
  let published = 0;
  class LoneClusterAdapter extends ClusterAdapterWithHeartbeat {
    constructor(nsp) {
      super(nsp, { heartbeatInterval: 60000, heartbeatTimeout: 120000 });
    }
    doPublish() {
      published += 1;
      return Promise.resolve(`pub-${published}`);
    }
    doPublishResponse() {
      return Promise.resolve();
    }
  }
  serverOptions.adapter = LoneClusterAdapter;
}

const httpServer = http.createServer();
let io;
if (opts.serverVersion === 2) {
  io = require("socket.io-v2")(httpServer, serverOptions);
} else if (opts.serverVersion === 3) {
  io = new (require("socket.io-v3").Server)(httpServer, serverOptions);
} else {
  io = new (require("socket.io").Server)(httpServer, serverOptions);
}

// Socket.IO 2.x has no CONNECT payload: clients send `auth` as query parameters, so `auth` is
// the handshake query without the Engine.IO parameters there.
const EIO_PARAMS = new Set(["EIO", "transport", "t", "sid", "b64", "j"]);
function handshakeAuth(socket) {
  const auth = socket.handshake.auth;
  // 4.8/3.1 with allowEIO3 give a v3 client's namespace query as auth, but {} for "/".
  if (auth !== undefined && socket.conn.protocol !== 3) return auth;
  const out = {};
  for (const [k, v] of Object.entries(socket.handshake.query || {})) {
    if (!EIO_PARAMS.has(k)) out[k] = v;
  }
  return Object.assign(out, auth || {});
}

// socket.timeout() came with Socket.IO 4.4: the same contract on older servers.
function emitWithTimeout(socket, ms, name, args, cb) {
  if (typeof socket.timeout === "function") {
    socket.timeout(ms).emit(name, ...args, cb);
    return;
  }
  let done = false;
  const timer = setTimeout(() => {
    if (done) return;
    done = true;
    cb(new Error("operation has timed out"));
  }, ms);
  socket.emit(name, ...args, (...answer) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    cb(null, ...answer);
  });
}

// Per-namespace server-side streams started by `stream_start`; they live on the namespace, not
// on the socket that asked, so they keep emitting while that socket is cut off (recovery tests).
const streams = new Map(); // nsp name -> {timer, seq}

function stopStream(nsp) {
  const s = streams.get(nsp.name);
  if (s) {
    clearInterval(s.timer);
    streams.delete(nsp.name);
  }
}

function startStream(nsp, intervalMs) {
  stopStream(nsp);
  const s = { seq: 0, timer: null };
  s.timer = setInterval(() => nsp.emit("seq", s.seq++), Math.max(1, Number(intervalMs) || 1));
  streams.set(nsp.name, s);
}

// Values recorded by `count`, by tag (shared by every namespace and socket).
const executed = new Map();

// Splits a trailing ack callback off the event arguments.
function splitAck(args) {
  if (args.length && typeof args[args.length - 1] === "function") {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, null];
}

function seqBuffer(seq) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(seq >>> 0);
  return b;
}

// Every connection and every event received from clients, across namespaces (`server_counts`).
const counts = { connections: 0, events: {} };

function installHandlers(nsp) {
  nsp.on("connection", (socket) => {
    counts.connections++;
    const countEvent = (event) => {
      if (event !== "server_counts") counts.events[event] = (counts.events[event] || 0) + 1;
    };
    // onAny came with Socket.IO 3; 2.x has per-socket middleware seeing [event, ...args].
    if (typeof socket.onAny === "function") socket.onAny(countEvent);
    else socket.use((packet, next) => { countEvent(packet[0]); next(); });
    socket.on("server_counts", (cb) => typeof cb === "function" && cb(counts));
    socket.on("echo", (...raw) => {
      const [args, cb] = splitAck(raw);
      socket.emit("echo", ...args);
      // Not in the ask of the event, but a client that passes a callback should not hang.
      if (cb) cb();
    });

    socket.on("ack", (...raw) => {
      const [args, cb] = splitAck(raw);
      if (cb) cb(...args);
    });

    socket.on("auth", (cb) => typeof cb === "function" && cb(handshakeAuth(socket)));
    socket.on("headers", (cb) => typeof cb === "function" && cb(socket.handshake.headers));
    socket.on("query", (cb) => typeof cb === "function" && cb(socket.handshake.query));
    socket.on("recovered", (cb) => typeof cb === "function" && cb(!!socket.recovered));

    socket.on("join", (room, cb) => {
      socket.join(room);
      if (typeof cb === "function") cb(true);
    });
    socket.on("leave", (room, cb) => {
      socket.leave(room);
      if (typeof cb === "function") cb(true);
    });

    socket.on("to_room", (room, ...raw) => {
      const [args] = splitAck(raw);
      nsp.to(room).emit("room_msg", room, ...args);
    });

    socket.on("ask", (payload, cb) => {
      // The callback form (rather than emitWithAck) keeps every ack argument; emitWithAck
      // resolves with the first one only.
      emitWithTimeout(socket, 5000, "question", [payload], (err, ...answer) => {
        if (!socket.connected) return;
        if (err) socket.emit("answer_error", err.message);
        else socket.emit("answer", answer);
        if (typeof cb === "function") cb();
      });
    });

    socket.on("burst", (n, cb) => {
      const count = Number(n) || 0;
      for (let i = 0; i < count; i++) socket.emit("tick", i);
      if (typeof cb === "function") cb(count);
    });

    socket.on("burst_binary", (n, cb) => {
      const count = Number(n) || 0;
      for (let i = 0; i < count; i++) socket.emit("bin_tick", i, seqBuffer(i));
      if (typeof cb === "function") cb(count);
    });

    socket.on("stream_start", (intervalMs, cb) => {
      startStream(nsp, intervalMs);
      if (typeof cb === "function") cb(true);
    });
    socket.on("stream_stop", (cb) => {
      stopStream(nsp);
      if (typeof cb === "function") cb(true);
    });

    // burst_kick (n): n ticks, then a server kick that also closes the connection. The close
    // arrives right behind the last ticks, in the same socket read as many of them.
    socket.on("burst_kick", (n) => {
      const count = Number(n) || 0;
      for (let i = 0; i < count; i++) socket.emit("tick", i);
      socket.disconnect(true);
    });

    socket.on("disconnect_me", () => socket.disconnect());
    socket.on("close_transport", () => socket.conn.close());

    socket.on("big", (nbytes, cb) => {
      const n = Math.max(0, Number(nbytes) || 0);
      socket.emit("big", "x".repeat(n));
      if (typeof cb === "function") cb(n);
    });

    // -- delivery checks: arguments that a client must pass on untouched --
    socket.on("volatile_echo", (...raw) => {
      const [args, cb] = splitAck(raw);
      socket.volatile.emit("volatile_echo", ...args);
      if (cb) cb();
    });
    socket.on("local_echo", (...raw) => {
      const [args, cb] = splitAck(raw);
      nsp.local.emit("local_echo", ...args);
      if (cb) cb();
    });
    socket.on("broadcast_echo", (...raw) => {
      const [args, cb] = splitAck(raw);
      nsp.emit("broadcast_echo", ...args);
      if (cb) cb();
    });
    // Emits an event by any name (a number too), with an ack when asked: cb(ack args).
    socket.on("emit_named", (name, args, withAck, cb) => {
      const list = Array.isArray(args) ? args : [];
      if (withAck) {
        emitWithTimeout(socket, 5000, name, list, (err, ...answer) => {
          if (typeof cb === "function") cb(err ? { error: err.message } : answer);
        });
      } else {
        socket.emit(name, ...list);
        if (typeof cb === "function") cb(true);
      }
    });
    // Counts what the server executed, per client tag (exactly-once checks): `count` (tag, cb?)
    // records one execution; `counted` (tag, cb) answers the list of recorded values.
    socket.on("count", (tag, value, cb) => {
      const list = executed.get(tag) || [];
      list.push(value);
      executed.set(tag, list);
      if (typeof cb === "function") cb(value);
    });
    socket.on("counted", (tag, cb) => typeof cb === "function" && cb(executed.get(tag) || []));
    socket.on("disconnect_after", (ms) => setTimeout(() => socket.disconnect(), Number(ms) || 0));

    socket.on("emit_undefined", (cb) => {
      socket.emit("undef", undefined, null, 1);
      socket.emit("date", new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)));
      socket.emit("arraybuffer", new Uint8Array([1, 2, 3]).buffer);
      if (typeof cb === "function") cb();
    });
  });
}

function requireToken(socket, next) {
  const auth = handshakeAuth(socket) || {};
  if (auth.token === "secret") return next();
  const err = new Error("unauthorized");
  err.data = { reason: "bad token" };
  next(err);
}

// --firehose N (benchmarks/stream.py, not part of the test contract): every WebSocket client of
// "/" receives N `tick` events, then `done` with N, as fastsio's embedded firehose sends them:
// pre-built text frames written to the TCP socket under the WebSocket library, in batches, so
// that the server is not what the benchmark measures. They are the frames the server's own
// encoder would send (`42["tick",...]`); the Engine.IO/Socket.IO handshake, the heartbeat and
// everything else still go through socket.io. A polling client gets the events through
// Engine.IO, one packet at a time.
const FIREHOSE_TICK = '2["tick",{"s":"AAPL","p":123.45,"q":100,"t":1700000000123}]';
const FIREHOSE_BATCH = 1024;

function wsTextFrame(text) {
  const payload = Buffer.from(text);
  if (payload.length >= 126) throw new Error("firehose frames are short");
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

function firehose(socket, count) {
  const conn = socket.conn;
  const done = `2["done",${count}]`;
  // Start once socket.io's own packets (the CONNECT) have left: raw frames must come after them.
  // (Looked at again shortly: the connection's "drain" only fires after a flush with data.)
  if (conn.writeBuffer.length || !conn.transport.writable) {
    setTimeout(() => firehose(socket, count), 1);
    return;
  }
  const tcp = conn.transport.name === "websocket" && conn.transport.socket
    && conn.transport.socket._socket;
  if (!tcp) {
    for (let i = 0; i < count; i++) conn.write(FIREHOSE_TICK);
    conn.write(done);
    return;
  }
  const batch = Buffer.concat(new Array(FIREHOSE_BATCH).fill(wsTextFrame("4" + FIREHOSE_TICK)));
  let sent = 0;
  const pump = () => {
    while (sent < count && !tcp.destroyed) {
      const n = Math.min(FIREHOSE_BATCH, count - sent);
      sent += n;
      const chunk = n === FIREHOSE_BATCH ? batch : batch.subarray(0, (batch.length / FIREHOSE_BATCH) * n);
      if (sent === count) {
        tcp.write(Buffer.concat([chunk, wsTextFrame("4" + done)]));
        return;
      }
      if (!tcp.write(chunk)) {
        tcp.once("drain", pump);
        return;
      }
    }
  };
  if (count === 0) tcp.write(wsTextFrame("4" + done));
  else pump();
}

if (opts.firehose !== null) io.of("/").on("connection", (socket) => firehose(socket, opts.firehose));
if (opts.rootAuth) io.of("/").use(requireToken);
installHandlers(io.of("/"));
installHandlers(io.of("/chat"));

const priv = io.of("/private");
priv.use(requireToken);
installHandlers(priv);

let closing = false;
function shutdown(code) {
  if (closing) return;
  closing = true;
  for (const s of streams.values()) clearInterval(s.timer);
  streams.clear();
  // io.close() disconnects every client and closes the HTTP server; the timer is a backstop for
  // keep-alive sockets that would otherwise hold the process open.
  io.close(() => process.exit(code));
  setTimeout(() => process.exit(code), 2000).unref();
}

process.on("SIGTERM", () => shutdown(0));
process.on("SIGINT", () => shutdown(0));
if (opts.stdinWatch) {
  // The fixture holds our stdin open; EOF means the test process died without cleaning up.
  process.stdin.on("end", () => shutdown(0));
  process.stdin.on("error", () => shutdown(0));
  process.stdin.resume();
}

httpServer.on("error", (err) => {
  process.stderr.write(`server.js: ${err.stack || err}\n`);
  process.exit(1);
});

httpServer.listen(opts.port, opts.host, () => {
  process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
});
