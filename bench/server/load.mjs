// Load on `cozy serve`, on loopback: CLIENTS WebSocket clients each queue
// PROMPTS prompts of a small graph (EmptyImage 64x64, Invert, SaveImage), the
// next as soon as the last one's execution_success arrives. Prints prompts
// lost, prompts in the history exactly once, p50/p99 from POST to
// execution_success, prompts/s, the server's RSS after warm-up and at the
// end; then one prompt at a time (p50), the graph's own run time inside the
// server (the history's cozy.seconds), and the same graph through `cozy run`.
// Measures; asserts nothing.
//
//   node bench/server/load.mjs [CLIENTS=20] [PROMPTS=50]
//   (COZY_BINARY names the program; tests/clients' node_modules must be installed)
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "../../tests/clients/node_modules/ws/wrapper.mjs";
import { cozy, startServer, stopServer, residentBytes } from "../../tests/clients/serve.mjs";

const clients = Number(process.argv[2] ?? 20);
const perClient = Number(process.argv[3] ?? 50);
const work = mkdtempSync(join(tmpdir(), "cozy-load-"));

let serial = 0;
function graph(prefix) {
  serial += 1; // a new colour each time: nothing is served from the cache
  return {
    1: { class_type: "EmptyImage", inputs: { width: 64, height: 64, batch_size: 1, color: serial % 0xffffff } },
    2: { class_type: "Invert", inputs: { image: ["1", 0] } },
    3: { class_type: "SaveImage", inputs: { images: ["2", 0], filename_prefix: prefix } },
  };
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const ms = (v) => `${v.toFixed(2)} ms`;

function connect(url, id) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/ws?clientId=${id}`);
    const waiting = new Map(); // prompt_id -> resolve
    const early = new Map(); // prompt_id -> outcome, for prompts that ended before POST's answer was read
    ws.on("message", (data, binary) => {
      if (binary) return;
      const message = JSON.parse(data.toString());
      if (message.type === "execution_success" || message.type === "execution_error") {
        const done = waiting.get(message.data.prompt_id);
        if (done) done(message.type);
        else early.set(message.data.prompt_id, message.type);
      }
    });
    waiting.early = early;
    ws.once("open", () => resolve({ ws, waiting }));
    ws.once("error", reject);
  });
}

async function runClient(url, id, count, latencies, onDone) {
  const { ws, waiting } = await connect(url, id);
  const ids = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    let finished;
    const response = await fetch(`${url}/prompt`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: graph(`load/${id}`), client_id: id }),
    });
    const { prompt_id: promptId } = await response.json();
    const outcome = await new Promise((resolve) => {
      if (waiting.early.has(promptId)) return resolve(waiting.early.get(promptId));
      waiting.set(promptId, resolve);
      finished = setTimeout(() => resolve("lost"), 60000);
    });
    clearTimeout(finished);
    waiting.delete(promptId);
    ids.push({ promptId, outcome });
    if (outcome === "execution_success") latencies.push(performance.now() - started);
    onDone();
  }
  ws.close();
  return ids;
}

const server = await startServer(work, ["--threads", "1", "--jobs", "1"]);
try {
  // One prompt at a time, after a warm-up.
  const alone = [];
  await runClient(server.url, "warmup", 20, [], () => {});
  await runClient(server.url, "alone", 50, alone, () => {});

  // Load.
  const latencies = [];
  let done = 0;
  let warmRss = 0;
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: clients }, (_, k) =>
    runClient(server.url, `c${k}`, perClient, latencies, () => {
      done += 1;
      if (done === Math.min(100, clients * perClient)) warmRss = residentBytes(server.child.pid);
    })));
  const seconds = (performance.now() - start) / 1000;
  const endRss = residentBytes(server.child.pid);

  const history = await (await fetch(`${server.url}/history`)).json();
  const sent = results.flat();
  const lost = sent.filter((r) => r.outcome !== "execution_success" || !history[r.promptId]);
  const own = sent.map((r) => history[r.promptId]?.cozy?.seconds * 1000).filter((v) => v >= 0);
  const ownAlone = Object.values(history).filter((h) => h.prompt[3].client_id === "alone").map((h) => h.cozy.seconds * 1000);

  // The same graph through `cozy run`, a process each time.
  const graphFile = join(work, "graph.json");
  writeFileSync(graphFile, JSON.stringify(graph("run/cli")));
  const cli = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const run = spawnSync(cozy, ["run", graphFile, "--output-dir", join(work, "cli"), "--progress", "none",
      "--threads", "1"]);
    if (run.status !== 0) throw new Error(run.stderr.toString());
    cli.push(performance.now() - t);
  }

  console.log(`cozy serve under load: ${clients} clients x ${perClient} prompts (EmptyImage 64x64, Invert, SaveImage)`);
  console.log(`  prompts lost                ${lost.length} of ${sent.length}`);
  console.log(`  in the history exactly once ${sent.filter((r) => history[r.promptId]).length} of ${sent.length}`);
  console.log(`  POST -> execution_success   p50 ${ms(quantile(latencies, 0.5))}, p99 ${ms(quantile(latencies, 0.99))}`);
  console.log(`  graph's own run time        p50 ${ms(quantile(own, 0.5))}, p99 ${ms(quantile(own, 0.99))}`);
  console.log(`  throughput                  ${(sent.length / seconds).toFixed(1)} prompts/s`);
  console.log(`  server RSS                  ${(warmRss / 2 ** 20).toFixed(1)} MiB after ${Math.min(100, clients * perClient)} prompts, ${(endRss / 2 ** 20).toFixed(1)} MiB at the end`);
  console.log("one prompt at a time (50, after 20 to warm up):");
  console.log(`  POST -> execution_success   p50 ${ms(quantile(alone, 0.5))}`);
  console.log(`  graph's own run time        p50 ${ms(quantile(ownAlone, 0.5))}`);
  console.log(`  overhead of the server      p50 ${ms(quantile(alone, 0.5) - quantile(ownAlone, 0.5))}`);
  console.log(`the same graph through \`cozy run\` (a process each): p50 ${ms(quantile(cli, 0.5))} of 5`);
} finally {
  await stopServer(server.child);
  rmSync(work, { recursive: true, force: true });
}
