#!/usr/bin/env node
// Node socket.io-client 4.8 leg of benchmarks/publish.py.
//
//   node benchmarks/node/publish_client.js URL --scenario S --count N [--window W] [--chunk C]
//
// Scenarios as in publish.py: emit-{json,msgpack}-{dict,args} emits COUNT events, handing the
// event loop back (setImmediate) every CHUNK emits; call-json keeps WINDOW calls outstanding.
// Then one call whose ack carries the server's count ends the window. Prints ONE JSON line with
// the keys of publish.py's workers: sent, counted, elapsed_s, events_per_s, cpu_us_per_event,
// cpu_percent, peak_rss_mb, rss_before_mb. On failure: {"error": "..."}.
"use strict";

const { performance } = require("perf_hooks");
const { peerRequire, fail, parseArgs, cpuSeconds } = require("./common");

const opts = parseArgs(
  process.argv.slice(2),
  { scenario: "emit-json-dict", count: 100000, window: 100, chunk: 1000 },
  "publish_client.js URL --scenario S --count N [--window W] [--chunk C]",
);

const { io } = peerRequire("socket.io-client");
const clientOptions = { transports: ["websocket"], reconnection: false, forceNew: true };
if (opts.scenario.includes("msgpack")) clientOptions.parser = peerRequire("socket.io-msgpack-parser");
const DICT_ARG = { sym: "AAPL", price: 101.25, qty: 300, seq: 123456 };
const ARGS = ["AAPL", 101.25, 300, true];
const args = opts.scenario.endsWith("-args") ? ARGS : [DICT_ARG];

const rssMb = () => process.resourceUsage().maxRSS / 1024;

const socket = io(opts.url, clientOptions);
socket.on("connect_error", (err) => fail(`connect_error: ${err.message}`));
socket.on("connect", () => {
  const rss0 = rssMb();
  const t0 = performance.now();
  const cpu0 = cpuSeconds();
  let sent = 0;
  const finish = () => {
    socket.emit("count", (counted) => {
      const elapsed = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds() - cpu0;
      process.stdout.write(JSON.stringify({
        sent,
        counted: counted - 1,
        elapsed_s: elapsed,
        events_per_s: sent / elapsed,
        cpu_us_per_event: (cpu / sent) * 1e6,
        cpu_percent: (cpu / elapsed) * 100,
        peak_rss_mb: rssMb(),
        rss_before_mb: rss0,
      }) + "\n");
      socket.close();
      setTimeout(() => process.exit(0), 50).unref();
    });
  };
  if (opts.scenario.startsWith("call")) {
    const total = Math.floor(opts.count / opts.window) * opts.window;
    let started = 0;
    const next = () => {
      if (started >= total) return;
      started++;
      socket.emit("tick", ...args, () => {
        sent++;
        if (sent === total) finish();
        else next();
      });
    };
    for (let i = 0; i < opts.window; i++) next();
  } else {
    const burst = () => {
      const end = Math.min(opts.count, sent + opts.chunk);
      while (sent < end) {
        socket.emit("tick", ...args);
        sent++;
      }
      if (sent < opts.count) setImmediate(burst);
      else finish();
    };
    burst();
  }
});
