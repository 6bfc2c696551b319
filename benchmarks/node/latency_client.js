#!/usr/bin/env node
// Node socket.io-client 4.8 leg of benchmarks/latency.py.
//
//   node benchmarks/node/latency_client.js URL [--timeout S]
//
// Records process.hrtime (CLOCK_MONOTONIC, the clock of the server's stamps) minus each `tick`
// event's stamp at handler entry, until the server's `done` event; prints ONE JSON line with the
// same keys as latency.py's Python workers. On failure: {"error": "..."}.
"use strict";

const { peers, peerRequire, fail, parseArgs } = require("./common");

const WARMUP = 0.2;
const { url, timeout } = parseArgs(process.argv.slice(2), { timeout: 30 }, "latency_client.js URL [--timeout S]");

let io;
try {
  io = peerRequire("socket.io-client").io;
} catch (e) {
  fail(`socket.io-client not found under ${peers}: ${e.message}`);
}

const samples = [];
const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });

function report(sent) {
  const skip = Math.floor(samples.length * WARMUP);
  const data = Float64Array.from(samples.slice(skip)).sort();
  const n = data.length;
  if (!n) fail("no samples");
  const q = (p) => data[Math.min(n - 1, Math.floor(p * n))] / 1000;
  const cdf = [];
  const qs = new Set();
  for (let i = 1; i < 100; i++) qs.add(Math.round(i) / 100);
  for (let i = 0; i < 10; i++) qs.add(Math.round((0.99 + i / 1000) * 1e4) / 1e4);
  for (let i = 0; i < 10; i++) qs.add(Math.round((0.999 + i / 10000) * 1e5) / 1e5);
  for (const p of [...qs].sort((a, b) => a - b)) cdf.push([p, q(p)]);
  process.stdout.write(
    JSON.stringify({
      received: samples.length, sent, samples: n,
      p50_us: q(0.5), p99_us: q(0.99), p999_us: q(0.999), max_us: data[n - 1] / 1000, cdf,
    }) + "\n"
  );
  socket.close();
  setTimeout(() => process.exit(0), 50).unref();
}

const timer = setTimeout(() => report(null), timeout * 1000);

// --- the benchmarked handler ---
socket.on("tick", (stamp) => {
  samples.push(Number(process.hrtime.bigint()) - stamp);
});
socket.on("done", (sent) => {
  clearTimeout(timer);
  report(sent);
});
socket.on("connect_error", (err) => fail(`connect_error: ${err.message}`));
