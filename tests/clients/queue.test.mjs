// Prompts over workers: `cozy serve --queue` with `cozy worker`s on a real
// nats-server (JetStream) that each test starts on a free loopback port.
// ComfyUI's protocol on the server's side is unchanged: prompts go in by
// POST /prompt, come out in GET /history, events arrive over the WebSocket.
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import WebSocket from "ws";
import { cozy, startServer, stopServer, startNats, startNatsCluster, startWorker, sleep } from "./serve.mjs";

// scripts/deps.sh --tests installs Debian's nats-server; without it there is nothing to test against.
const noNats = spawnSync("nats-server", ["--version"]).error
  ? "nats-server is not installed (scripts/deps.sh --tests installs it)" : false;
const ackWait = "3";  // seconds: a killed worker's prompt goes to another after this
const testPlugins = join(dirname(cozy), "tests", "test_plugins", "objects");  // TestCrash

// A large batch blurred, then saved small: about a second of work on one
// thread here as it is, longer with a larger size, batch or sigma.
function prompt(i, prefix = `queue/p${i}`, { size = 1024, batch = 6, sigma = 24 } = {}) {
  return {
    1: { class_type: "EmptyImage", inputs: { width: size, height: size, batch_size: batch, color: i * 4099 } },
    2: { class_type: "GaussianBlur", inputs: { image: ["1", 0], sigma } },
    3: { class_type: "Resize", inputs: { image: ["2", 0], width: 32, height: 32 } },
    4: { class_type: "SaveImage", inputs: { images: ["3", 0], filename_prefix: prefix } },
  };
}

async function json(url, body) {
  const response = await fetch(url, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

async function waitForHistory(server, count, timeoutMs = 240000) {
  let history = {};
  for (let waited = 0; waited < timeoutMs; waited += 200) {
    history = await json(`${server.url}/history`);
    if (Object.keys(history).length >= count) return history;
    await sleep(200);
  }
  assert.fail(`${Object.keys(history).length} of ${count} prompts in the history after ${timeoutMs} ms`);
}

// nats-server, cozy serve --queue and the named workers, in a fresh folder.
async function cluster(t, { workers = ["w1", "w2"], serverArgs = [], workerArgs = [] } = {}) {
  const work = mkdtempSync(join(tmpdir(), "cozy-queue-"));
  const parts = { work, workers: [] };
  t.after(async () => {
    for (const w of parts.workers) await stopServer(w.child, "SIGKILL");
    if (parts.server) await stopServer(parts.server.child);
    if (parts.nats) await stopServer(parts.nats.child);
    rmSync(work, { recursive: true, force: true });
  });
  parts.nats = await startNats(join(work, "jetstream"));
  parts.server = await startServer(work, ["--queue", parts.nats.url, "--ack-wait", ackWait, ...serverArgs]);
  // Each worker writes into its own folder, as on another machine: what a
  // prompt writes comes back to the server's output folder through the queue.
  for (const name of workers)
    parts.workers.push(await startWorker(work, parts.nats.url, name, { outputs: `output-${name}`, extra: workerArgs }));
  return parts;
}

test("2 workers, 10 prompts: each in the history once, run by both, its files in the server's folder", { skip: noNats }, async (t) => {
  const { work, server, workers } = await cluster(t);
  // A ComfyUI client follows its prompt over the WebSocket.
  const events = [];
  const ws = new WebSocket(`ws://${server.host}/ws?clientId=queue-client`);
  ws.on("message", (data, binary) => { if (!binary) events.push(JSON.parse(data.toString())); });
  await new Promise((r, reject) => { ws.once("open", r); ws.once("error", reject); });
  t.after(() => ws.close());

  const ids = [];
  // One prefix for all: both workers number their files from 00001, so the
  // server must keep every file apart.
  for (let i = 0; i < 10; i++)
    ids.push((await json(`${server.url}/prompt`, { prompt: prompt(i, "queue/same"), client_id: "queue-client" })).prompt_id);
  const history = await waitForHistory(server, 10);
  assert.deepEqual(Object.keys(history).sort(), [...ids].sort(), "each prompt in the history exactly once");
  const ranBy = new Set();
  const files = new Set();
  for (const id of ids) {
    assert.equal(history[id].status.status_str, "success", JSON.stringify(history[id].status));
    ranBy.add(history[id].cozy.worker);
    for (const image of history[id].outputs["4"].images) {
      const path = join(work, "output", image.subfolder, image.filename);
      assert.ok(existsSync(path), `${path} came back to the server`);
      assert.deepEqual([...readFileSync(path).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${path} is a PNG`);
      files.add(path);
      const view = await fetch(`${server.url}/view?filename=${image.filename}&subfolder=${image.subfolder}&type=output`);
      assert.equal(view.status, 200);
    }
  }
  assert.equal(files.size, 60, "60 images, none written over another");
  assert.deepEqual([...ranBy].sort(), workers.map((w) => w.name).sort(), "both workers ran prompts");
  assert.deepEqual((await json(`${server.url}/queue`)).queue_pending, []);

  // The events of the first prompt, in ComfyUI's order, ending with
  // `executing` with a null node once its history is there.
  const mine = events.filter((e) => e.data?.prompt_id === ids[0]).map((e) =>
    e.type === "executing" ? `executing ${e.data.node}` : e.type === "executed" ? `executed ${e.data.node}` : e.type);
  assert.equal(mine[0], "execution_start", mine.join(", "));
  for (const expected of ["executing 4", "executed 4", "execution_success"]) assert.ok(mine.includes(expected), mine.join(", "));
  assert.equal(mine.at(-1), "executing null", mine.join(", "));

  // SIGTERM: each stops cleanly (under the sanitizers: with nothing to report).
  for (const w of workers) {
    await stopServer(w.child);
    assert.equal(w.child.exitCode, 0, w.log());
  }
  await stopServer(server.child);
  assert.equal(server.child.exitCode, 0);
});

test("kill -9 of the worker running a prompt: the other worker completes it, once", { skip: noNats }, async (t) => {
  const { server, workers } = await cluster(t);
  const ids = [];
  // Long enough (seconds) to be killed while it runs.
  const slow = { size: 1536, batch: 6, sigma: 40 };
  for (let i = 0; i < 4; i++) ids.push((await json(`${server.url}/prompt`, { prompt: prompt(i, `queue/p${i}`, slow) })).prompt_id);
  const [victim, survivor] = workers;
  let held;
  for (let waited = 0; waited < 60000 && !held; waited += 20) {
    held = victim.log().match(/prompt (\S+): started/)?.[1];
    if (!held) await sleep(20);
  }
  assert.ok(held, "the first worker never started a prompt");
  await stopServer(victim.child, "SIGKILL");
  const history = await waitForHistory(server, 4);
  assert.deepEqual(Object.keys(history).sort(), [...ids].sort());
  for (const id of ids) assert.equal(history[id].status.status_str, "success", id);
  assert.equal(history[held].cozy.worker, survivor.name, "the killed worker's prompt was finished by the other");
  assert.match(survivor.log(), new RegExp(`prompt ${held}: started \\(delivery 2\\)`));
  assert.doesNotMatch(victim.log(), new RegExp(`prompt ${held}: done`));
});

test("nats-server killed and restarted mid-run: every prompt finishes, once", { skip: noNats }, async (t) => {
  const parts = await cluster(t);
  const { server } = parts;
  const ids = [];
  for (let i = 0; i < 10; i++) ids.push((await json(`${server.url}/prompt`, { prompt: prompt(i) })).prompt_id);
  // Kill it while prompts are queued, running and done.
  for (let waited = 0; waited < 120000; waited += 100) {
    if (Object.keys(await json(`${server.url}/history`)).length >= 2) break;
    await sleep(100);
  }
  const done = Object.keys(await json(`${server.url}/history`)).length;
  assert.ok(done >= 2 && done < 10, `${done} done when nats-server was killed`);
  await stopServer(parts.nats.child, "SIGKILL");
  await sleep(1000);
  parts.nats = await startNats(join(parts.work, "jetstream"), parts.nats.port);
  const history = await waitForHistory(server, 10);
  assert.deepEqual(Object.keys(history).sort(), [...ids].sort(), "each prompt in the history exactly once");
  for (const id of ids) assert.equal(history[id].status.status_str, "success", JSON.stringify(history[id].status));
});

test("cozy serve killed and restarted mid-run: results sent meanwhile are recorded, every prompt once", { skip: noNats }, async (t) => {
  const parts = await cluster(t);
  const ids = [];
  for (let i = 0; i < 10; i++) ids.push((await json(`${parts.server.url}/prompt`, { prompt: prompt(i) })).prompt_id);
  for (let waited = 0; waited < 120000; waited += 100) {
    if (Object.keys(await json(`${parts.server.url}/history`)).length >= 2) break;
    await sleep(100);
  }
  await stopServer(parts.server.child, "SIGKILL");
  await sleep(3000);  // the workers go on; their results wait in COZY_RESULTS
  parts.server = await startServer(parts.work, ["--queue", parts.nats.url, "--ack-wait", ackWait]);
  const history = await waitForHistory(parts.server, 10);
  assert.deepEqual(Object.keys(history).sort(), [...ids].sort(), "each prompt in the history exactly once");
  for (const id of ids) {
    assert.equal(history[id].status.status_str, "success", JSON.stringify(history[id].status));
    for (const image of history[id].outputs["4"].images)
      assert.ok(existsSync(join(parts.work, "output", image.subfolder, image.filename)), image.filename);
  }
});

test("a prompt that kills every worker that takes it fails after --max-deliveries; the rest run", { skip: noNats }, async (t) => {
  const plugins = ["--plugins", testPlugins];
  // A supervisor (systemd, a container runtime) starts a dead worker again,
  // until the test ends (this hook runs before the cluster's is stopped).
  let deaths = 0;
  let stopped = false;
  t.after(() => { stopped = true; });
  const parts = await cluster(t, { workers: ["w1"], serverArgs: ["--max-deliveries", "2", ...plugins], workerArgs: plugins });
  const { server, nats, work } = parts;
  const watch = (w) => w.child.once("exit", async () => {
    if (stopped) return;
    deaths += 1;
    const next = await startWorker(work, nats.url, `w1-${deaths}`, { outputs: "output-w1", extra: plugins });
    parts.workers.push(next);
    watch(next);
  });
  watch(parts.workers[0]);

  const poison = (await json(`${server.url}/prompt`, { prompt: { 1: { class_type: "TestCrash", inputs: {} } } })).prompt_id;
  const fine = (await json(`${server.url}/prompt`, { prompt: prompt(1) })).prompt_id;
  const history = await waitForHistory(server, 2);
  assert.equal(history[fine].status.status_str, "success");
  assert.equal(history[poison].status.status_str, "error");
  const error = history[poison].status.messages.find((m) => m[0] === "execution_error")[1];
  assert.match(error.exception_message, /delivered to a worker 2 times; each stopped before finishing it/);
  assert.equal(error.exception_type, "cozy::server::GaveUp");
  assert.equal(deaths, 2, "the poison prompt killed a worker twice, not more");
});

test("a prompt deleted from the queue is not run; /interrupt reaches the worker running a prompt", { skip: noNats }, async (t) => {
  const parts = await cluster(t, { workers: [] });
  const { server, nats, work } = parts;
  const withdrawn = (await json(`${server.url}/prompt`, { prompt: prompt(1) })).prompt_id;
  const kept = (await json(`${server.url}/prompt`, { prompt: prompt(2) })).prompt_id;
  await json(`${server.url}/queue`, { delete: [withdrawn] });
  const worker = await startWorker(work, nats.url, "w1", { outputs: "output-w1" });
  parts.workers.push(worker);
  let history = await waitForHistory(server, 1);
  assert.deepEqual(Object.keys(history), [kept]);
  for (let waited = 0; waited < 10000 && !worker.log().includes(withdrawn); waited += 50) await sleep(50);
  assert.match(worker.log(), new RegExp(`prompt ${withdrawn}: has a result already; not run again`));

  // Half a minute of work, interrupted once it runs.
  const long = prompt(3, "queue/long", { size: 1536, batch: 24, sigma: 60 });
  const id = (await json(`${server.url}/prompt`, { prompt: long })).prompt_id;
  for (let waited = 0; waited < 30000; waited += 50) {
    if ((await json(`${server.url}/queue`)).queue_running.some((p) => p[1] === id)) break;
    await sleep(50);
  }
  await json(`${server.url}/interrupt`, {});
  history = await waitForHistory(server, 2, 60000);
  assert.equal(history[id].status.status_str, "error");
  assert.ok(history[id].status.messages.some((m) => m[0] === "execution_interrupted"), JSON.stringify(history[id].status));
  assert.equal(history[id].cozy.interrupted, true);
});

test("a worker started first waits for the queue; one stopped by SIGTERM mid-prompt gives it back at once", { skip: noNats }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), "cozy-queue-"));
  const processes = [];
  t.after(async () => {
    for (const p of processes.reverse()) await stopServer(p.child, "SIGKILL");
    rmSync(work, { recursive: true, force: true });
  });
  const nats = await startNats(join(work, "jetstream"));
  processes.push(nats);
  const first = await startWorker(work, nats.url, "w1", { outputs: "output-w1", ready: /waiting for `cozy serve --queue/ });
  processes.push(first);
  // A long ack wait: the prompt can only come back this quickly by the worker's nak.
  const server = await startServer(work, ["--queue", nats.url, "--ack-wait", "60"]);
  processes.push(server);
  for (let waited = 0; !first.log().includes("taking prompts from"); waited += 50) {
    assert.ok(waited < 30000, first.log());
    await sleep(50);
  }
  const second = await startWorker(work, nats.url, "w2", { outputs: "output-w2" });
  processes.push(second);
  const slow = { size: 1536, batch: 6, sigma: 40 };
  const ids = [];
  for (let i = 0; i < 2; i++) ids.push((await json(`${server.url}/prompt`, { prompt: prompt(i, `queue/p${i}`, slow) })).prompt_id);
  let held;
  for (let waited = 0; waited < 60000 && !held; waited += 20) {
    held = first.log().match(/prompt (\S+): started/)?.[1];
    if (!held) await sleep(20);
  }
  assert.ok(held, "the first worker never started a prompt");
  const stopped = performance.now();
  await stopServer(first.child);
  assert.equal(first.child.exitCode, 0, first.log());
  assert.match(first.log(), new RegExp(`prompt ${held}: interrupted by this worker's stop; given back to the queue`));
  const history = await waitForHistory(server, 2, 50000);
  assert.ok(performance.now() - stopped < 50000, "back well before the 60 s ack wait");
  assert.equal(history[held].status.status_str, "success");
  assert.equal(history[held].cozy.worker, "w2");
});

test("a 3-node NATS cluster, --queue-replicas 3: one node killed mid-run, nothing lost", { skip: noNats }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), "cozy-queue-"));
  const processes = [];
  t.after(async () => {
    for (const p of processes.reverse()) await stopServer(p.child, "SIGKILL");
    rmSync(work, { recursive: true, force: true });
  });
  const nodes = await startNatsCluster(join(work, "jetstream"));
  processes.push(...nodes);
  const urls = nodes.map((n) => n.url).join(",");
  const server = await startServer(work, ["--queue", urls, "--queue-replicas", "3", "--ack-wait", ackWait]);
  processes.push(server);
  for (const name of ["w1", "w2"]) processes.push(await startWorker(work, urls, name, { outputs: `output-${name}` }));
  const ids = [];
  for (let i = 0; i < 10; i++) ids.push((await json(`${server.url}/prompt`, { prompt: prompt(i) })).prompt_id);
  for (let waited = 0; waited < 120000; waited += 100) {
    if (Object.keys(await json(`${server.url}/history`)).length >= 2) break;
    await sleep(100);
  }
  // The node that leads the metadata is the hardest to lose.
  const leader = nodes.find((n) => /Self is new JetStream cluster metadata leader/.test(n.log())) ?? nodes[0];
  await stopServer(leader.child, "SIGKILL");
  const history = await waitForHistory(server, 10);
  assert.deepEqual(Object.keys(history).sort(), [...ids].sort(), "each prompt in the history exactly once");
  for (const id of ids) assert.equal(history[id].status.status_str, "success", JSON.stringify(history[id].status));
});

test("a queue that cannot be reached is named, by the server and by a worker", () => {
  const work = mkdtempSync(join(tmpdir(), "cozy-queue-"));
  try {
    const folders = ["--input-dir", join(work, "input"), "--output-dir", join(work, "output")];
    const server = spawnSync(cozy, ["serve", "--port", "0", "--queue", "nats://127.0.0.1:1", "--user-dir",
      join(work, "user"), ...folders], { encoding: "utf8", timeout: 60000 });
    assert.equal(server.status, 2, server.stderr);
    assert.match(server.stderr, /error: cannot reach the queue at nats:\/\/127\.0\.0\.1:1: /);
    const worker = spawnSync(cozy, ["worker", "--queue", "nats://127.0.0.1:1", ...folders],
      { encoding: "utf8", timeout: 60000 });
    assert.equal(worker.status, 2, worker.stderr);
    assert.match(worker.stderr, /error: cannot reach the queue at nats:\/\/127\.0\.0\.1:1: /);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
