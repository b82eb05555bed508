// Miniflare peer for bench/run.py: start one workload's module Worker(s) through Miniflare's
// programmatic API, listen on 127.0.0.1:PORT and print "ready <url>" once it serves requests.
//
//   node server.mjs WORKLOAD PORT PERSIST_DIR
//
// WORKLOAD is one of the keys of WORKLOADS below; each mirrors bench/apps/<WORKLOAD>/ (the
// Python Workers edgelet runs), binding for binding. State goes under PERSIST_DIR, as
// `wrangler dev` persists by default. Stops cleanly on SIGTERM/SIGINT.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
// miniflare is installed by bench/setup_peers.sh into bench/.peers/miniflare, not beside this file.
const require = createRequire(process.env.MINIFLARE_HOME
  ? path.resolve(process.env.MINIFLARE_HOME, "package.json")
  : path.join(here, "..", "..", ".peers", "miniflare", "package.json"));
const { Miniflare, Log, LogLevel } = require("miniflare");

const COMPAT = { compatibilityDate: "2026-04-01", modules: true };
const script = (name) => path.join(here, "workers", `${name}.mjs`);

const WORKLOADS = {
  hello: { name: "hello", scriptPath: script("hello") },
  kv: { name: "kv", scriptPath: script("kv"), kvNamespaces: { KV: "bench-kv" } },
  d1: { name: "d1", scriptPath: script("d1"), d1Databases: { DB: "bench-d1" } },
  r2: { name: "r2", scriptPath: script("r2"), r2Buckets: { B: "bench-r2" } },
  do: { name: "do", scriptPath: script("do"), durableObjects: { COUNTER: "Counter" } },
  // two Workers: the first answers HTTP and calls the class the second defines
  do_cross: [
    { name: "caller", scriptPath: script("do_cross_caller"),
      durableObjects: { COUNTER: { className: "Counter", scriptName: "objects" } } },
    { name: "objects", scriptPath: script("do_cross_objects"), durableObjects: { COUNTER: "Counter" } },
  ],
  ws: { name: "ws", scriptPath: script("ws"), durableObjects: { ROOMS: "Room" } },
  queue: {
    name: "queue", scriptPath: script("queue"),
    queueProducers: { Q: { queueName: "bench-q" } },
    queueConsumers: { "bench-q": { maxBatchSize: 100, maxBatchTimeout: 1 } },
  },
  workflow: {
    name: "workflow", scriptPath: script("workflow"),
    workflows: { STEPS: { name: "steps", className: "Steps" } },
  },
};

const [workload, port, persist] = process.argv.slice(2);
const worker = WORKLOADS[workload];
if (!worker) {
  console.error(`unknown workload '${workload}' (expected one of ${Object.keys(WORKLOADS).join(", ")})`);
  process.exit(2);
}
const mf = new Miniflare({
  host: "127.0.0.1",
  port: Number(port || 0),
  defaultPersistRoot: persist,
  log: new Log(LogLevel[process.env.MINIFLARE_LOG_LEVEL || "WARN"]),
  cf: false, // no request.cf download: this machine reaches no outside host
  workers: (Array.isArray(worker) ? worker : [worker]).map((w) => ({ ...COMPAT, ...w })),
});
const url = await mf.ready;
console.log(`ready ${url.href}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await mf.dispose();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
