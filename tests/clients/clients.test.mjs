// ComfyUI's npm clients, unchanged, against `cozy serve`: each queues the
// shipped sample graph, follows it over the WebSocket, downloads its image
// and checks it against what `cozy run` makes of the same graph; one
// interrupts a long TrainGAN. The server is started and stopped here, on
// loopback.
//
//   COZY_BINARY (default ../../build/cozy) is the program under test.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { Client } from "@stable-canvas/comfyui-client";
import { ComfyApi, CallWrapper, PromptBuilder } from "@saintno/comfyui-sdk";
import { cozy, root, startServer, stopServer } from "./serve.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), "cozy-clients-"));
const sampleGraph = JSON.parse(readFileSync(join(root, "graphs", "sample.json"), "utf8"));
for (const node of Object.values(sampleGraph)) delete node._meta;

let server;
let host; // "127.0.0.1:PORT"
let reference; // the PNG `cozy run` writes for the sample graph

before(async () => {
  const ran = spawnSync(cozy, ["run", join(root, "graphs", "sample.json"), "--models-dir", join(root, "models"),
    "--output-dir", join(work, "reference"), "--progress", "none"], { encoding: "utf8" });
  assert.equal(ran.status, 0, ran.stderr);
  reference = readFileSync(join(work, "reference", readdirSync(join(work, "reference"))[0]));
  ({ child: server, host } = await startServer(work, ["--threads", "2"]));
});

after(async () => {
  if (server) await stopServer(server);
  rmSync(work, { recursive: true, force: true });
});

// Width and height from a PNG's IHDR chunk.
function pngSize(bytes) {
  assert.equal(bytes.subarray(1, 4).toString("latin1"), "PNG");
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

test("@stable-canvas/comfyui-client runs the sample graph and gets its image", async () => {
  const client = new Client({ api_host: host, clientId: "stable-canvas", WebSocket, fetch });
  client.connect();
  const executing = [];
  client.on("executing", (data) => executing.push(data.node));
  try {
    const result = await client.enqueue(sampleGraph, { disable_random_seed: true, timeout_ms: 120000 });
    assert.ok(result.prompt_id);
    // Every node, in an order the graph allows, then null at the end.
    for (let i = 0; i < 100 && executing.at(-1) !== null; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(executing.filter((n) => n !== null), ["1", "2", "3", "4", "5"]);
    assert.equal(executing.at(-1), null, "executing with node null ends the prompt");
    assert.equal(result.images.length, 1);
    const image = result.images[0];
    const bytes = image.type === "url"
      ? Buffer.from(await (await fetch(image.data)).arrayBuffer())
      : Buffer.from(image.data);
    assert.deepEqual(pngSize(bytes), pngSize(reference));
    assert.ok(bytes.equals(reference), "the served image is the one `cozy run` makes");
    const { History } = await client.getHistory();
    const item = History.find((h) => h.prompt[1] === result.prompt_id);
    assert.equal(item.status.status_str, "success");
  } finally {
    client.close();
  }
});

test("@saintno/comfyui-sdk's CallWrapper runs the sample graph with progress", async () => {
  const api = new ComfyApi(`http://${host}`, "saintno");
  await api.init(10, 500).waitForReady();
  const workflow = new PromptBuilder(sampleGraph, ["seed"], ["grid"])
    .setInputNode("seed", "2.inputs.seed")
    .setOutputNode("grid", "5")
    .input("seed", 0);
  const executed = [];
  const off = api.on("executed", (event) => executed.push(event.detail.node));
  const result = await new Promise((resolveRun, reject) => {
    new CallWrapper(api, workflow)
      .onFinished((data, promptId) => resolveRun({ data, promptId }))
      .onFailed((err) => reject(err))
      .run();
  });
  const images = result.data.grid.images;
  assert.equal(images.length, 1);
  const bytes = Buffer.from(await (await api.getImage(images[0])).arrayBuffer());
  assert.ok(bytes.equals(reference), "the served image is the one `cozy run` makes");
  assert.deepEqual(executed, ["5"], "SaveImage's executed event, over the WebSocket");
  off();
  api.destroy();
});

// The SDK's command line is built with regular expressions (the /v flag)
// that Node 20 first reads; Debian 12's own node is 18.
const nodeMajor = Number(process.versions.node.split(".")[0]);
test("cfli runs a workflow file and downloads its image", {
  skip: nodeMajor < 20 && `cfli needs Node 20 or later (this is ${process.version}, Debian 12's own)`,
}, () => {
  const cli = join(here, "node_modules", "@saintno", "comfyui-sdk", "dist", "cli.js");
  const downloads = join(work, "downloads");
  const graphFile = join(root, "graphs", "sample.json");
  const run = spawnSync(process.execPath, [cli, "-f", graphFile, "-H", `http://${host}`, "--json", "-d", "-o",
    downloads, "-t", "120000"], { encoding: "utf8", timeout: 180000 });
  assert.equal(run.status, 0, run.stderr + run.stdout);
  const report = JSON.parse(run.stdout.slice(run.stdout.indexOf("{")));
  assert.equal(report.status, "completed");
  const files = readdirSync(downloads);
  assert.equal(files.length, 1);
  assert.ok(readFileSync(join(downloads, files[0])).equals(reference));
});

test("an interrupt stops a long TrainGAN and the history says so", async () => {
  const client = new Client({ api_host: host, clientId: "interrupter", WebSocket, fetch });
  client.connect();
  try {
    const graph = {
      1: { class_type: "LoadFashionMNIST", inputs: { split: "train", subset: 512, shuffle_seed: 0 } },
      2: { class_type: "TrainGAN", inputs: { dataset: ["1", 0], steps: 100000, batch: 16, conditional: false,
        width: 8, name: "interrupted/gan" } },
      3: { class_type: "SaveModel", inputs: { model: ["2", 0], filename_prefix: "never" } },
    };
    const interrupted = new Promise((r) => client.on("execution_interrupted", r));
    let promptId;
    const training = new Promise((r) => client.on("progress", (p) => {
      if (p.node === "2" && p.value >= 2) r(p);
    }));
    const queued = await client.queuePrompt(-1, { prompt: graph });
    promptId = queued.prompt_id;
    await training;
    await client.interrupt();
    const message = await interrupted;
    assert.equal(message.prompt_id, promptId);
    assert.equal(message.node_id, "2");
    let item;
    for (let i = 0; i < 200 && !item; i++) {
      item = (await client.getHistory()).History.find((h) => h.prompt[1] === promptId);
      if (!item) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(item.status.status_str, "error");
    assert.equal(item.status.messages.at(-1)[0], "execution_interrupted");
    assert.ok(!existsSync(join(root, "models", "never_00001.pt")), "nothing after the interrupted node ran");
  } finally {
    client.close();
  }
});
