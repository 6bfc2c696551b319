#!/usr/bin/env node
// Node socket.io-client 4.8 leg of benchmarks/rtt.py.
//
//   node benchmarks/node/rtt_client.js URL WARMUP COUNT [TIMEOUT_S] [CLIENT_MODULE]
//
// CLIENT_MODULE (default socket.io-client) is resolved from the peers directory, e.g.
// socket.io-v2/node_modules/socket.io-client for the 2.x client (a callback ack, no
// emitWithAck).
//
// Connects with transports: ['websocket'], makes WARMUP unmeasured then COUNT measured
// sequential `await socket.emitWithAck("ack", n)` calls (the server's `ack` event calls back with
// its arguments; each ack must carry n back), and prints ONE JSON line on stdout with the same
// keys as rtt.py's Python workers: samples_ns (one round trip per measured call), cpu_s (this
// process's user+sys CPU over the measured calls), maxrss_kb, loop ("node"). On failure:
// {"error": "..."}.
// Peers are resolved as common.js says (tests/peers, or FASTSIO_NODE_PEERS).
"use strict";

const { peerRequire, fail } = require("./common");

const clientModule = process.argv[6] || "socket.io-client";
const loaded = peerRequire(clientModule);
const io = loaded.io || loaded; // 2.x exports the function itself

const [url, warmupArg, countArg, timeoutArg] = process.argv.slice(2);
const warmup = Number(warmupArg);
const count = Number(countArg);
if (!url || !Number.isInteger(warmup) || !Number.isInteger(count) || count < 1) {
  process.stderr.write("usage: rtt_client.js URL WARMUP COUNT [TIMEOUT_S]\n");
  process.exit(2);
}
setTimeout(() => fail("timed out"), Number(timeoutArg || 120) * 1000).unref();

const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
const call = typeof socket.emitWithAck === "function"
  ? (n) => socket.emitWithAck("ack", n)
  : (n) => new Promise((resolve) => socket.emit("ack", n, resolve));
socket.on("connect_error", (err) => fail(`connect_error: ${err.message}`));
socket.once("connect", async () => {
  try {
    for (let n = 0; n < warmup; n++) {
      const got = await call(n);
      if (got !== n) throw new Error(`ack ${n} came back as ${got}`);
    }
    const samples = new Array(count);
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < count; i++) {
      const n = warmup + i;
      const t0 = process.hrtime.bigint();
      const got = await call(n);
      samples[i] = Number(process.hrtime.bigint() - t0);
      if (got !== n) throw new Error(`ack ${n} came back as ${got}`);
    }
    const cpu = process.cpuUsage(cpu0);
    socket.disconnect();
    process.stdout.write(
      JSON.stringify({
        samples_ns: samples,
        cpu_s: (cpu.user + cpu.system) / 1e6,
        maxrss_kb: process.resourceUsage().maxRSS,
        loop: "node",
        node: process.version,
      }) + "\n",
    );
    process.exit(0);
  } catch (err) {
    fail((err && err.stack) || err);
  }
});
