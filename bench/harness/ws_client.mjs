// The WebSocket bench's load generator: a Node.js client built on the `ws` package (the one
// Miniflare itself depends on, installed with it under bench/.peers/miniflare), so that the
// client costs a few microseconds of CPU per message instead of the ~30 µs of the Python
// `websockets` client, and the figures measure the servers. Both platforms get the same
// client in the same run (bench/harness/ws.py starts it).
//
//   node ws_client.mjs echo   WS_BASE SOCKETS SECONDS
//   node ws_client.mjs fanout WS_BASE SOCKETS ROUNDS
//
// Protocol with the parent, one line each: after the sockets are open and warmed up it prints
// `ready`, waits for a line on stdin (the parent reads its CPU counters then), runs the timed
// part and prints one JSON line with the result; an error prints `error: ...` and exits 1.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const peers = process.env.EDGELET_BENCH_PEERS || join(here, "..", ".peers");
// `ws` is Miniflare's own dependency: resolve it from where Miniflare is installed
const requireFromMiniflare = createRequire(join(peers, "miniflare", "node_modules", "miniflare", "package.json"));
const WebSocket = requireFromMiniflare("ws");

// Untimed work before the clock starts, the same for both platforms. The client itself needs
// it: in the first 50 broadcast rounds after a 5-round warm-up this process spent 1.8-1.9 ms of
// CPU per round, against 1.0-1.1 ms once 50-100 rounds had run (V8 compiling the handlers, the
// new connections' first segments). That extra millisecond lands on both sides alike, so a
// 50-round run measured mostly the client warming up and pulled every ratio towards 1
// (bench/RESULTS.md, "Round 2, sixth session: WebSockets").
const FANOUT_WARMUP_ROUNDS = 100;
const ECHO_WARMUP_SECONDS = 0.5;

const [mode, base, countArg, amountArg] = process.argv.slice(2);
const count = Number(countArg);
const amount = Number(amountArg);

function fail(message) {
  process.stdout.write(`error: ${message}\n`);
  process.exit(1);
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 30000 });
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("error", (err) => reject(new Error(`could not open a WebSocket to ${url}: ${err.message}`)));
  });
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once("message", (data) => resolve(data.toString())));
}

function waitForGo() {
  return new Promise((resolve) => {
    process.stdout.write("ready\n");
    process.stdin.once("data", () => resolve());
  });
}

async function echo() {
  const sockets = [];
  for (let i = 0; i < count; i++) sockets.push(await open(`${base}/room/echo${i}`));
  for (const ws of sockets) {  // every object exists before the clock starts
    ws.send("e:warm");
    if ((await nextMessage(ws)) !== "e:warm") fail("the echo room answered something else than the message sent");
  }
  // each socket sends its next message once the last one came back, until `deadline`
  const run = (deadline) => Promise.all(sockets.map((ws) => new Promise((resolve) => {
    let done = 0;
    const onMessage = () => {
      done++;
      if (performance.now() < deadline) ws.send("e:x");
      else {
        ws.off("message", onMessage);
        resolve(done);
      }
    };
    ws.on("message", onMessage);
    ws.send("e:x");
  })));
  await run(performance.now() + ECHO_WARMUP_SECONDS * 1000);  // untimed (see the top)
  await waitForGo();
  const started = performance.now();
  const counts = await run(started + amount * 1000);
  const done = counts.reduce((a, b) => a + b, 0);
  const seconds = (performance.now() - started) / 1000;
  for (const ws of sockets) ws.close();
  return { round_trips: done, seconds };
}

async function fanout() {
  const sockets = [];
  for (let i = 0; i < count; i++) sockets.push(await open(`${base}/room/fan`));
  let expected = null;
  let pending = 0;
  let finish = null;
  for (const ws of sockets) {
    ws.on("message", (data) => {
      const text = data.toString();
      if (text !== expected) fail(`fan-out: a socket received ${JSON.stringify(text)}, expected ${JSON.stringify(expected)}`);
      if (--pending === 0) finish();
    });
  }
  const round = (i) => new Promise((resolve) => {
    expected = `b:${i}`;
    pending = sockets.length;
    finish = resolve;
    sockets[i % sockets.length].send(expected);
  });
  for (let i = 0; i < FANOUT_WARMUP_ROUNDS; i++) await round(i);  // untimed (see the top)
  await waitForGo();
  const times = [];
  for (let i = FANOUT_WARMUP_ROUNDS; i < amount + FANOUT_WARMUP_ROUNDS; i++) {
    const started = performance.now();
    await round(i);
    times.push(performance.now() - started);
  }
  for (const ws of sockets) ws.close();
  return { times_ms: times };
}

const run = mode === "echo" ? echo : mode === "fanout" ? fanout : null;
if (run === null) fail(`unknown mode ${JSON.stringify(mode)}: use echo or fanout`);
const timer = setTimeout(() => fail("no answer within 120 s"), 120000 + amount * 1000);
run().then((result) => {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(result) + "\n");
  setTimeout(() => process.exit(0), 200);  // let the close frames leave
}, (err) => fail(err.message));
