#!/usr/bin/env node
// Node socket.io-client 4.8 leg of benchmarks/stream.py.
//
//   node benchmarks/node/stream_client.js URL [--parser json|msgpack] [--timeout S] [--client M]
//
// --client: the client package, resolved from the peers directory (default socket.io-client;
// socket.io-client-v2 is the 2.x client, for a Socket.IO 2.x server).
// Connects with transports: ['websocket'], counts `tick` events until the server's `done`
// event, and prints ONE JSON line on stdout with the same keys as the Python workers of
// stream.py: received, done_count, elapsed_s, events_per_s (first tick -> done), cpu_s,
// cpu_us_per_event, cpu_percent (this process's user+sys CPU over that window), maxrss_kb
// (this process's peak RSS), loop ("node"), versions. On failure: {"error": "..."}.
// Peers are resolved as common.js says (tests/peers, or FASTSIO_NODE_PEERS).
"use strict";

const { performance } = require("perf_hooks");
const { peers, peerRequire, fail, parseArgs, cpuSeconds } = require("./common");

function checkedArgs(argv) {
  const opts = parseArgs(
    argv,
    { parser: "json", timeout: 300, client: "socket.io-client" },
    "stream_client.js URL [--parser json|msgpack] [--timeout S] [--client M]",
  );
  if (opts.parser !== "json" && opts.parser !== "msgpack") fail(`unknown parser ${opts.parser}`);
  if (!(opts.timeout > 0)) fail("--timeout needs a positive number of seconds");
  return opts;
}

function pkgVersion(name) {
  try {
    return peerRequire(`${name}/package.json`).version;
  } catch (e) {
    return null;
  }
}

const opts = checkedArgs(process.argv.slice(2));
let io;
try {
  const loaded = peerRequire(opts.client);
  io = loaded.io || loaded; // 2.x exports the function itself
} catch (e) {
  fail(`${opts.client} not found under ${peers} (run npm ci --prefix tests/peers): ${e.message}`);
}
const clientOptions = { transports: ["websocket"], reconnection: false, forceNew: true };
if (opts.parser === "msgpack") clientOptions.parser = peerRequire("socket.io-msgpack-parser");

let received = 0;
let t0 = 0;
let cpu0 = 0;
const socket = io(opts.url, clientOptions);

const timer = setTimeout(() => {
  socket.close();
  fail(`timed out after ${opts.timeout} s with ${received} events`);
}, opts.timeout * 1000);

// --- the benchmarked handler ---
function tick(data) {
  received++;
}

// --- measurement scaffolding: time the first event, then swap in the plain handler ---
function firstTick(data) {
  t0 = performance.now();
  cpu0 = cpuSeconds();
  received++;
  socket.off("tick", firstTick);
  socket.on("tick", tick);
}

socket.on("tick", firstTick);
socket.on("done", (count) => {
  const t1 = performance.now();
  const cpu1 = cpuSeconds();
  clearTimeout(timer);
  const elapsed = (t1 - t0) / 1000;
  const cpu = cpu1 - cpu0;
  socket.close();
  const result = {
    received,
    done_count: count,
    elapsed_s: elapsed,
    events_per_s: elapsed > 0 ? received / elapsed : null,
    cpu_s: cpu,
    cpu_us_per_event: received ? (cpu / received) * 1e6 : null,
    cpu_percent: elapsed > 0 ? (cpu / elapsed) * 100 : null,
    loop: "node",
    maxrss_kb: process.resourceUsage().maxRSS,
    versions: {
      node: process.versions.node,
      [opts.client]: pkgVersion(opts.client),
      "socket.io-msgpack-parser": opts.parser === "msgpack" ? pkgVersion("socket.io-msgpack-parser") : null,
    },
  };
  process.stdout.write(JSON.stringify(result) + "\n");
  // Let the close frame go out, then exit even if something keeps the loop alive.
  setTimeout(() => process.exit(0), 50).unref();
});
socket.on("connect_error", (err) => {
  clearTimeout(timer);
  fail(`connect_error: ${err.message}`);
});
socket.on("disconnect", (reason) => {
  if (reason !== "io client disconnect") {
    clearTimeout(timer);
    fail(`disconnected before 'done': ${reason}`);
  }
});
