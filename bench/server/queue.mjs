// Prompts over workers, on loopback: `cozy serve` with its own executor
// against `cozy serve --queue` with 1 and 2 `cozy worker`s on a local
// nats-server (JetStream, its store in a temporary folder).
//
// Latency: LATENCY prompts of a small graph (EmptyImage 64x64, Invert,
// SaveImage), one at a time, from POST /prompt to the WebSocket's
// `executing` with a null node (the history is written): p50 and p99.
// Throughput: BATCH prompts of a blur graph (a second or so of work on one
// thread) queued at once, until the last is in the history: prompts/s.
// Workers and the own executor run nodes on one thread each (--threads 1
// --jobs 1); the own executor also with 2 threads. Measures; asserts nothing.
//
//   node bench/server/queue.mjs [LATENCY=200] [BATCH=20]
//   (COZY_BINARY names the program; tests/clients' node_modules must be installed)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "../../tests/clients/node_modules/ws/wrapper.mjs";
import { startServer, stopServer, startNats, startWorker } from "../../tests/clients/serve.mjs";

const latencyCount = Number(process.argv[2] ?? 200);
const batchCount = Number(process.argv[3] ?? 20);
let serial = 0;

const small = () => {
  serial += 1;  // a new colour each time: nothing is served from a cache
  return {
    1: { class_type: "EmptyImage", inputs: { width: 64, height: 64, batch_size: 1, color: serial % 0xffffff } },
    2: { class_type: "Invert", inputs: { image: ["1", 0] } },
    3: { class_type: "SaveImage", inputs: { images: ["2", 0], filename_prefix: "bench/small" } },
  };
};
const blur = () => {
  serial += 1;
  return {
    1: { class_type: "EmptyImage", inputs: { width: 1024, height: 1024, batch_size: 6, color: serial % 0xffffff } },
    2: { class_type: "GaussianBlur", inputs: { image: ["1", 0], sigma: 24 } },
    3: { class_type: "Resize", inputs: { image: ["2", 0], width: 32, height: 32 } },
    4: { class_type: "SaveImage", inputs: { images: ["3", 0], filename_prefix: "bench/blur" } },
  };
};

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};

async function post(url, prompt, clientId) {
  const response = await fetch(`${url}/prompt`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt, client_id: clientId }),
  });
  if (response.status !== 200) throw new Error(await response.text());
  return (await response.json()).prompt_id;
}

// Resolves each prompt when `executing` with a null node arrives for it.
async function follow(server, clientId) {
  const ws = new WebSocket(`ws://${server.host}/ws?clientId=${clientId}`);
  const done = new Map();
  const waiting = new Map();
  ws.on("message", (data, binary) => {
    if (binary) return;
    const message = JSON.parse(data.toString());
    if (message.type !== "executing" || message.data.node !== null) return;
    const id = message.data.prompt_id;
    done.set(id, performance.now());
    waiting.get(id)?.();
  });
  await new Promise((r, reject) => { ws.once("open", r); ws.once("error", reject); });
  return {
    ws,
    finished: (id) => done.has(id) ? Promise.resolve() : new Promise((r) => waiting.set(id, r)),
  };
}

async function measure(label, server) {
  const client = await follow(server, "bench");
  for (let i = 0; i < 10; i++) await client.finished(await post(server.url, small(), "bench"));  // warm-up
  const latencies = [];
  for (let i = 0; i < latencyCount; i++) {
    const start = performance.now();
    await client.finished(await post(server.url, small(), "bench"));
    latencies.push(performance.now() - start);
  }
  await client.finished(await post(server.url, blur(), "bench"));  // warm-up
  const start = performance.now();
  const ids = [];
  for (let i = 0; i < batchCount; i++) ids.push(await post(server.url, blur(), "bench"));
  await Promise.all(ids.map((id) => client.finished(id)));
  const seconds = (performance.now() - start) / 1000;
  client.ws.close();
  const row = { label, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), rate: batchCount / seconds };
  console.log(`${label.padEnd(34)} latency p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms; ` +
    `${batchCount} blur prompts in ${seconds.toFixed(2)} s: ${row.rate.toFixed(2)} prompts/s`);
  return row;
}

const rows = [];
for (const threads of [1, 2]) {
  const work = mkdtempSync(join(tmpdir(), "cozy-queue-bench-"));
  const server = await startServer(work, ["--threads", String(threads), "--jobs", "1"]);
  rows.push(await measure(`own executor, ${threads} thread${threads > 1 ? "s" : ""}`, server));
  await stopServer(server.child);
  rmSync(work, { recursive: true, force: true });
}
for (const count of [1, 2]) {
  const work = mkdtempSync(join(tmpdir(), "cozy-queue-bench-"));
  const nats = await startNats(join(work, "jetstream"));
  const server = await startServer(work, ["--queue", nats.url]);
  const workers = [];
  for (let i = 0; i < count; i++) workers.push(await startWorker(work, nats.url, `w${i + 1}`, { outputs: `output-w${i + 1}` }));
  rows.push(await measure(`queue, ${count} worker${count > 1 ? "s" : ""} x 1 thread`, server));
  for (const w of workers) await stopServer(w.child);
  await stopServer(server.child);
  await stopServer(nats.child);
  rmSync(work, { recursive: true, force: true });
}
const own = rows[0];
for (const row of rows.slice(1))
  console.log(`${row.label}: p50 ${(row.p50 / own.p50).toFixed(2)}x, prompts/s ${(row.rate / own.rate).toFixed(2)}x ` +
    `the own executor's (1 thread)`);
