// Shared by the Node benchmark clients (require("./common")): where the socket.io peers are, the
// failure line, the flag parser and the CPU clock. The clients keep their own measurement.
//
// socket.io-client and socket.io-msgpack-parser are resolved from tests/peers/node_modules
// (`npm ci --prefix tests/peers`); set FASTSIO_NODE_PEERS to another directory holding a
// package.json with those dependencies installed.
"use strict";

const path = require("path");
const { createRequire } = require("module");

const peers = process.env.FASTSIO_NODE_PEERS || path.resolve(__dirname, "..", "..", "tests", "peers");
const peerRequire = createRequire(path.join(peers, "package.json"));

// Prints the one JSON line the Python side reads on failure, and exits.
function fail(msg) {
  process.stdout.write(JSON.stringify({ error: String(msg) }) + "\n");
  process.exit(1);
}

// `URL [--name value]...` into a copy of `defaults` (url: null); a flag takes the type of its
// default (numbers stay numbers). --help prints `usage` and exits 0; an unknown flag fails.
function parseArgs(argv, defaults, usage) {
  const opts = { url: null, ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const key = a.startsWith("--") ? a.slice(2) : null;
    if (a === "--help" || a === "-h") {
      process.stderr.write(`usage: ${usage}\n`);
      process.exit(0);
    } else if (key !== null && key !== "url" && key in defaults) {
      opts[key] = typeof defaults[key] === "number" ? Number(argv[++i]) : argv[++i];
    } else if (!opts.url && key === null) opts.url = a;
    else fail(`unknown argument ${a}`);
  }
  if (!opts.url) fail("URL is required");
  return opts;
}

// This process's user+system CPU time, in seconds.
function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

module.exports = { peers, peerRequire, fail, parseArgs, cpuSeconds };
