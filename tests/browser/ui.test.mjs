// ComfyUI's own web frontend on `cozy serve`, driven in Debian's chromium by
// playwright-core with a real mouse: the page loads clean, Cozy's nodes are in
// its library, a shipped graph queues and shows its image, the queue and
// history panels open, a running prompt is cancelled, a layout drawn on the
// LayoutCanvas reaches the prompt and the scene, and likes on a batch steer
// the next round. Screenshots of each step go to $COZY_BROWSER_ARTIFACTS
// (default build/browser-artifacts).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { root, startServer, stopServer, sleep } from "../clients/serve.mjs";

const artifacts = process.env.COZY_BROWSER_ARTIFACTS ?? join(root, "build", "browser-artifacts");
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "cozy-browser-"));
let server, browser, page;
const problems = [];  // console errors and failed requests, with where they came from

// What the page may log that is not Cozy's: the frontend asks api.comfy.org
// for release notes (no network here), and reads user files it has not
// written yet (user.css, comfy.templates.json, workflows/.index.json): 404s,
// as in ComfyUI.
function foreign(text) {
  return /api\.comfy\.org|ERR_NAME_NOT_RESOLVED|ERR_INTERNET_DISCONNECTED/.test(text) ||
    (/\/api\/userdata\/[^?\s)]+(?=[\s)]|$)/.test(text) && /404|ERR_ABORTED/.test(text));
}

// Requests the page has sent and not yet had answered (or seen fail).
const inFlight = new Set();

// Waits until the page has had nothing in flight for `settle` ms.
async function quiet(settle = 300, timeout = 15000) {
  const start = Date.now();
  let since = Date.now();
  while (Date.now() - since < settle) {
    if (inFlight.size > 0) since = Date.now();
    assert.ok(Date.now() - start < timeout, `requests still in flight: ${[...inFlight].map((r) => r.url()).join(", ")}`);
    await sleep(50);
  }
}

async function shot(name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

const app = (fn, arg) => page.evaluate(fn, arg);

async function history() {
  return (await fetch(`${server.url}/api/history`)).json();
}

// Waits until the history holds `count` prompts, all finished; returns them in order.
async function finished(count, timeout = 240000) {
  const start = Date.now();
  while (Date.now() - start < timeout) {
    const h = await history();
    const items = Object.values(h);
    if (items.length >= count && items.every((i) => i.status?.completed !== undefined)) return items;
    await sleep(250);
  }
  throw new Error(`no ${count} finished prompts in ${timeout} ms`);
}

async function loadApiGraph(graph, name) {
  await app(async ([g, n]) => {
    await window.comfyAPI.app.app.loadApiJson(g, n);
  }, [graph, name]);
  await page.waitForTimeout(500);
}

// The whole graph in view (the frontend's "fit view" key).
async function fitView() {
  await page.locator("canvas#graph-canvas").click({ position: { x: 600, y: 700 } });
  await page.keyboard.press(".");
  await page.waitForTimeout(500);
}

async function queue() {
  await page.locator('[data-testid="queue-button"]').click();
}

before(async () => {
  // The feedback loop's first round starts from a shipped latents file in the input folder.
  mkdirSync(join(work, "input"), { recursive: true });
  copyFileSync(join(root, "input", "feedback_loop_start.pt"), join(work, "input", "feedback_loop_start.pt"));
  server = await startServer(work);
  browser = await chromium.launch({
    executablePath: process.env.COZY_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on("requestfailed", (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("request", (r) => inFlight.add(r));
  page.on("requestfinished", (r) => inFlight.delete(r));
  page.on("requestfailed", (r) => inFlight.delete(r));
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server.child);
  rmSync(work, { recursive: true, force: true });
});

test("the frontend loads with no errors of ours", async () => {
  await page.goto(server.url);
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && document.querySelector('[data-testid="queue-button"]'),
    null, { timeout: 120000 });
  await page.waitForTimeout(3000);  // what the frontend asks for after its first paint
  await shot("01-loaded");
  await page.keyboard.press("Escape");  // the template browser a first visit opens
  const ours = problems.filter((p) => !foreign(p));
  assert.deepEqual(ours, [], ours.join("\n"));
  const extensions = await (await fetch(`${server.url}/api/extensions`)).json();
  assert.ok(extensions.includes("/extensions/cozy/layout_canvas.js"), JSON.stringify(extensions));
});

test("the node library lists Cozy's nodes under their categories", async () => {
  await page.locator('[data-testid="node-library-tab-button"]').click();
  await page.waitForTimeout(500);
  await page.keyboard.type("GAN Sample");
  await page.getByText("GAN Sample", { exact: true }).first().waitFor({ timeout: 10000 });
  await shot("02-node-library");
  // The definitions the frontend holds: category, widgets and the upload button.
  const defs = await app(() => {
    const d = window.comfyAPI.app.app;
    const lib = window.LiteGraph.registered_node_types;
    const g = lib.GANSample?.nodeData, l = lib.LoadImage?.nodeData;
    return { gan: g && { category: g.category, display: g.display_name }, upload: l?.input?.required?.image?.[1]?.image_upload,
      count: Object.keys(lib).length, hasGraph: !!d.graph };
  });
  assert.deepEqual(defs.gan, { category: "gan", display: "GAN Sample" });
  assert.equal(defs.upload, true);
  await page.locator('[data-testid="node-library-tab-button"]').click();  // closed again
});

test("the shipped sample graph queues and its image shows in the node", async () => {
  const graph = JSON.parse(readFileSync(join(root, "graphs", "sample.json"), "utf8"));
  await loadApiGraph(graph, "sample");
  await queue();
  const [item] = await finished(1);
  assert.equal(item.status.status_str, "success", JSON.stringify(item.status));
  const saved = Object.values(item.outputs).flatMap((o) => o.images ?? []);
  assert.ok(saved.length > 0);
  // The SaveImage node holds the image the server sent, loaded from /view
  // (drawn when the node is in view: fit the view to the graph).
  await fitView();
  await page.waitForFunction((name) => window.comfyAPI.app.app.graph.nodes.some((n) =>
    (n.imgs ?? []).some((img) => img.src.includes(encodeURIComponent(name)) && img.complete && img.naturalWidth > 0)),
  saved[0].filename, { timeout: 30000 });
  await page.waitForTimeout(500);
  await shot("03-sample-image");
});

test("the queue and history panels open and list the prompt", async () => {
  await page.locator('[data-testid="queue-overlay-toggle"]').click();
  await page.waitForTimeout(1000);
  await shot("04-queue-panel");
  const overlay = await page.locator('[data-testid="queue-progress-overlay"]').innerText();
  assert.match(overlay, /fashion_samples_00001\.png/, overlay);
  await page.locator('[data-testid="queue-overlay-toggle"]').click();
  await page.locator('[data-testid="assets-tab-button"]').click();
  await page.waitForTimeout(1500);
  await shot("05-assets-history");
  await page.locator('[data-testid="assets-tab-button"]').click();
});

test("a running prompt is cancelled from the page", async () => {
  const before = Object.keys(await history()).length;
  const slow = {
    "1": { class_type: "LoadFashionMNIST", inputs: { split: "train", subset: 512, shuffle_seed: 0 } },
    "2": { class_type: "TrainGAN", inputs: { dataset: ["1", 0], steps: 100000, epochs: 0, batch: 32, width: 8,
      latent: 16, seed: 0, conditional: false, name: "cancelled/gan" } },
    "3": { class_type: "GANSample", inputs: { generator: ["2", 0], seed: 0, batch: 4, class_index: -1 } },
    "4": { class_type: "PreviewImage", inputs: { images: ["3", 0] } },
  };
  await loadApiGraph(slow, "slow");
  await queue();
  // Running: the server reports progress of TrainGAN.
  const start = Date.now();
  while (!(await (await fetch(`${server.url}/api/queue`)).json()).queue_running.length) {
    assert.ok(Date.now() - start < 60000, "the prompt did not start");
    await sleep(200);
  }
  await page.waitForTimeout(1500);
  await shot("06-running");
  await page.getByRole("button", { name: "Cancel current run" }).click();
  const items = await finished(before + 1, 60000);
  const last = items[items.length - 1];
  const kinds = (last.status.messages ?? []).map((m) => m[0]);
  assert.ok(kinds.includes("execution_interrupted"), JSON.stringify(last.status));
});

// Frame coordinates (fractions of the layout's frame) to page pixels.
async function framePoint(fx, fy) {
  const box = await page.locator('[data-testid="cozy-layout-canvas"]').boundingBox();
  return { x: box.x + fx * box.width, y: box.y + fy * box.height, scale: box.width / 320, box };
}

async function mouseDrag(from, to) {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(to.x, to.y, { steps: 12 });
  await page.mouse.up();
  await page.waitForTimeout(150);
}

test("a layout drawn with the mouse reaches the prompt and the scene", async (t) => {
  const before = Object.keys(await history()).length;
  const canvasGraph = {
    "1": { class_type: "LayoutCanvas", inputs: { layout: JSON.stringify({ format: "cozy-layout", version: 1,
      background: "#f4f1ea", shapes: [] }) } },
    "2": { class_type: "LoadGenerator", inputs: { checkpoint: "fashion_cdcgan_00001.pt" } },
    "3": { class_type: "ComposeScene", inputs: { layout: ["1", 0], generator: ["2", 0], width: 128, height: 128, seed: 0,
      texture_strength: 0.6, fit: "box", candidates: 8, critic: ["6", 0] } },
    "4": { class_type: "SaveImage", inputs: { images: ["3", 0], filename_prefix: "canvas_scene" } },
    "5": { class_type: "LoadClassifier", inputs: { checkpoint: "fashion_classifier_00001.pt" } },
    "6": { class_type: "LoadClassifier", inputs: { checkpoint: "fashion_critic_00001.pt" } },
    "7": { class_type: "LayoutFidelity", inputs: { layout: ["1", 0], image: ["3", 0], instances: ["3", 1],
      classifier: ["5", 0] } },
    "8": { class_type: "PreviewAny", inputs: { source: ["7", 2] } },
  };
  await loadApiGraph(canvasGraph, "layout canvas");
  await page.locator('[data-testid="cozy-layout-canvas"]').scrollIntoViewIfNeeded();
  await shot("07-canvas-empty");

  await page.locator('[data-testid="cozy-layout-add-rectangle"]').click();
  await page.locator('[data-testid="cozy-layout-class"]').selectOption("Bag");
  // Drag the shape from the middle to (0.35, 0.6).
  await mouseDrag(await framePoint(0.5, 0.5), await framePoint(0.35, 0.6));
  await shot("08-canvas-moved");
  // Scale by its bottom-right corner handle: half sizes 0.15 -> 0.2 across, 0.25 down.
  await mouseDrag(await framePoint(0.5, 0.75), await framePoint(0.55, 0.85));
  await shot("09-canvas-scaled");
  // Rotate by the handle above the top edge, 30 degrees clockwise about the centre.
  const c = await framePoint(0.35, 0.6);
  const arm = 0.25 * c.box.width + 26 * c.scale;
  const rad = (30 * Math.PI) / 180;
  await mouseDrag({ x: c.x, y: c.y - arm }, { x: c.x + arm * Math.sin(rad), y: c.y - arm * Math.cos(rad) });
  await shot("10-canvas-rotated");

  await queue();
  const items = await finished(before + 1);
  const item = items[items.length - 1];
  assert.equal(item.status.status_str, "success", JSON.stringify(item.status));
  const layout = JSON.parse(item.prompt[2]["1"].inputs.layout);
  assert.equal(layout.shapes.length, 1, JSON.stringify(layout));
  const s = layout.shapes[0];
  assert.equal(s.shape, "rectangle");
  assert.equal(s.class, "Bag");
  assert.ok(Math.abs(s.center[0] - 0.35) <= 0.02 && Math.abs(s.center[1] - 0.6) <= 0.02, JSON.stringify(s));
  assert.ok(Math.abs(s.size[0] - 0.4) <= 0.02 && Math.abs(s.size[1] - 0.5) <= 0.02, JSON.stringify(s));
  assert.ok(Math.abs(s.rotation - 30) <= 3, JSON.stringify(s));
  // The scene puts the object there: LayoutFidelity's IoU of the object with the shape.
  const iou = Number(item.outputs["8"].text[0]);
  t.diagnostic(`drawn: centre ${s.center}, size ${s.size}, rotation ${s.rotation}; scene IoU ${iou}`);
  assert.ok(iou >= 0.5, `IoU ${iou}`);

  // The log kept in the node's properties replays headless to the same layout.
  const log = await app(() => window.comfyAPI.app.app.graph.nodes.find((n) => n.type === "LayoutCanvas")
    .properties.cozy_interaction_log);
  assert.deepEqual(log.operations.map((o) => o.op), ["add", "reclass", "drag", "scale", "rotate"]);
  const replayGraph = {
    "1": { class_type: "ReplayInteractions", inputs: { log_file: "", log: JSON.stringify(log) } },
    "2": { class_type: "SaveLayout", inputs: { layout: ["1", 0], filename_prefix: "replayed" } },
    "3": { class_type: "LayoutCanvas", inputs: { layout: item.prompt[2]["1"].inputs.layout } },
    "4": { class_type: "SaveLayout", inputs: { layout: ["3", 0], filename_prefix: "drawn" } },
  };
  const posted = await fetch(`${server.url}/api/prompt`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: replayGraph }) });
  assert.equal(posted.status, 200, await posted.text());
  await finished(before + 2);
  const read = (name) => JSON.parse(readFileSync(join(work, "output", name), "utf8"));
  const replayed = read("replayed_00001.json"), drawn = read("drawn_00001.json");
  assert.deepEqual(replayed.shapes, drawn.shapes);

  // Keys on the canvas edit the layout, not the graph: Delete removes the
  // selected shape (the node stays), Ctrl+Z brings it back.
  const shapes = () => app(() => JSON.parse(window.comfyAPI.app.app.graph.nodes.find((n) => n.type === "LayoutCanvas")
    .widgets.find((w) => w.name === "layout").value).shapes.length);
  const centre = await framePoint(0.35, 0.6);
  await page.mouse.click(centre.x, centre.y);
  await page.keyboard.press("Delete");
  assert.equal(await shapes(), 0);
  assert.ok(await app(() => window.comfyAPI.app.app.graph.nodes.some((n) => n.type === "LayoutCanvas")), "the node stays");
  await page.keyboard.press("Control+z");
  assert.equal(await shapes(), 1);
});

// The classes the shipped classifier gives the batch a latents file makes.
async function classesOf(file) {
  const before = Object.keys(await history()).length;
  const g = {
    "1": { class_type: "LoadGenerator", inputs: { checkpoint: "fashion_cdcgan_00001.pt" } },
    "2": { class_type: "LoadLatents", inputs: { file } },
    "3": { class_type: "GANSample", inputs: { generator: ["1", 0], latent: ["2", 0] } },
    "4": { class_type: "LoadClassifier", inputs: { checkpoint: "fashion_classifier_00001.pt" } },
    "5": { class_type: "ClassifyImages", inputs: { classifier: ["4", 0], images: ["3", 0] } },
  };
  const r = await fetch(`${server.url}/api/prompt`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: g }) });
  const body = await r.text();
  assert.equal(r.status, 200, body);
  await finished(before + 1);
  const item = (await history())[JSON.parse(body).prompt_id];
  return item.outputs["5"].text[0].split(",");
}

test("likes on a batch steer the next round", async (t) => {
  const before = Object.keys(await history()).length;
  // The loop from Cozy's workflow templates, opened as a user does.
  const templates = await (await fetch(`${server.url}/api/workflow_templates`)).json();
  assert.deepEqual(templates.cozy, ["feedback_loop", "layout_canvas"]);
  await page.getByRole("button", { name: "Templates", exact: true }).click();
  await page.getByText("feedback_loop", { exact: true }).first().click();
  await page.waitForFunction(() => window.comfyAPI.app.app.graph.nodes.some((n) => n.type === "Feedback"), null,
    { timeout: 30000 });
  await fitView();
  await shot("11-feedback-template");
  await queue();
  await finished(before + 1);
  await page.locator('[data-testid="cozy-feedback-image-0"]').waitFor({ timeout: 30000 });
  // The round's latents were carried into the input folder for the next round.
  const carried = (name) => page.waitForFunction((n) =>
    document.querySelector('[data-testid="cozy-feedback"]')?.dataset.carried === n, name, { timeout: 30000 });
  const savedName = (item) => item.outputs["7"].files[0].filename;
  await carried(savedName(Object.values(await history()).at(-1)));
  const file = await app(() => window.comfyAPI.app.app.graph.nodes.find((x) => x.type === "LoadLatents")
    .widgets.find((w) => w.name === "file").value);
  const first = await classesOf(file);
  assert.equal(first.length, 16);
  // Like three images: of the batch's most common class, the classes the
  // classifier tells apart best first (a liked "Dress" may be the generator's
  // coat, whose children are coats).
  const reliable = ["Trouser", "Bag", "Sandal", "Sneaker", "Ankle boot"];
  const count = (list, c) => list.filter((x) => x === c).length + (reliable.includes(c) ? 0.5 : 0);
  const order = first.map((c, i) => ({ c, i })).sort((a, b) => count(first, b.c) - count(first, a.c) || a.i - b.i);
  const liked = order.slice(0, 3).map((x) => x.i);
  await fitView();
  const likedClasses = new Set(liked.map((i) => first[i]));
  for (const i of liked) await page.locator(`[data-testid="cozy-like-${i}"]`).click();
  await shot("12-feedback-marked");
  const marks = await app(() => {
    const n = window.comfyAPI.app.app.graph.nodes.find((x) => x.type === "Feedback");
    return Object.fromEntries(n.widgets.map((w) => [w.name, w.value]));
  });
  assert.equal(marks.liked, [...liked].sort((a, b) => a - b).join(","));
  assert.equal(marks.batch, 16);

  await queue();
  const items = await finished(before + 3);
  const round = items[items.length - 1];
  assert.equal(round.prompt[2]["3"].inputs.liked, marks.liked, "the next round read the marks");
  assert.equal(round.prompt[2]["2"].inputs.file, file, "and the last round's latents");
  await carried(savedName(round));
  await page.waitForTimeout(1000);
  await shot("13-feedback-next-round");
  const next = await classesOf(file);
  const share = (list) => list.filter((c) => likedClasses.has(c)).length / list.length;
  // Keys: an image clicked, then D dislikes it.
  await page.locator('[data-testid="cozy-feedback-image-5"] img').click();
  await page.keyboard.press("d");
  const disliked = await app(() => window.comfyAPI.app.app.graph.nodes.find((x) => x.type === "Feedback")
    .widgets.find((w) => w.name === "disliked").value);
  assert.equal(disliked, "5");
  t.diagnostic(`liked ${liked} (${[...likedClasses]}): their share ${share(first)} -> ${share(next)}`);
  assert.ok(share(next) > share(first), `liked classes ${[...likedClasses]}: ${share(first)} -> ${share(next)}`);
});

// `cozy convert` turns an editor workflow into the prompt the frontend itself
// would send: the shipped templates, and the loop with a node muted and one
// bypassed.
test("cozy convert makes the frontend's own prompt", async () => {
  const cases = {};
  for (const name of ["feedback_loop", "layout_canvas"])
    cases[name] = await (await fetch(`${server.url}/api/workflow_templates/cozy/${name}.json`)).json();
  const edited = structuredClone(cases.feedback_loop);
  for (const n of edited.nodes) {
    if (n.type === "SaveLatents") n.mode = 2;  // muted
  }
  cases.muted = edited;
  const bypassed = structuredClone(cases.feedback_loop);
  for (const n of bypassed.nodes) if (n.type === "EvolveLatents") n.mode = 4;  // its latent input passes on
  cases.bypassed = bypassed;
  const results = {};
  for (const [name, workflow] of Object.entries(cases)) {
    const expected = await app(async (wf) => {
      const a = window.comfyAPI.app.app;
      await a.loadGraphData(wf, true, true, "convert");
      return (await a.graphToPrompt()).output;
    }, workflow);
    const file = join(work, `${name}.workflow.json`), api = join(work, `${name}.api.json`);
    writeFileSync(file, JSON.stringify(workflow));
    execFileSync(process.env.COZY_BINARY ?? join(root, "build", "cozy"), ["convert", file, api]);
    results[name] = { expected, got: JSON.parse(readFileSync(api, "utf8")) };
  }
  for (const [name, { expected, got }] of Object.entries(results)) {
    const strip = (p) => Object.fromEntries(Object.entries(p).map(([id, n]) => [id, { class_type: n.class_type,
      inputs: n.inputs }]));
    assert.deepEqual(strip(got), strip(expected), name);
  }
});

// Saved from the menu's keyboard shortcut, a workflow lands in the user
// folder and is there, and opens, after the server restarts.
test("a workflow saved from the editor is there after a restart", async () => {
  await loadApiGraph(JSON.parse(readFileSync(join(root, "graphs", "sample.json"), "utf8")), "to save");
  await fitView();
  await page.keyboard.press("Control+s");
  const name = page.getByRole("dialog").locator("input");
  await name.waitFor({ timeout: 10000 });
  await name.fill("my sample");
  await shot("14-save-dialog");
  // The page must have its answer before it leaves: the file is on disk a
  // moment before the response is sent.
  const saved = page.waitForResponse((r) => r.request().method() === "POST" && r.url().includes("/api/userdata/workflows"),
    { timeout: 15000 });
  await name.press("Enter");
  assert.equal((await saved).status(), 200);
  await quiet();
  const file = join(work, "user", "default", "workflows", "my sample.json");
  assert.ok(existsSync(file), "the workflow was not saved in the user folder");
  assert.ok(JSON.parse(readFileSync(file, "utf8")).nodes.some((n) => n.type === "GANSample"));

  await page.goto("about:blank");  // the page would ask the stopped server
  await stopServer(server.child);
  server = await startServer(work);
  await page.goto(server.url);
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && document.querySelector('[data-testid="queue-button"]'),
    null, { timeout: 120000 });
  await page.keyboard.press("Escape");
  await page.locator('[data-testid="workflows-tab-button"]').click();
  await page.getByText("my sample", { exact: true }).first().click();
  await page.waitForFunction(() => window.comfyAPI.app.app.graph.nodes.some((n) => n.type === "GANSample"), null,
    { timeout: 15000 });
  await shot("15-reopened-after-restart");
});

test("no errors of ours through all of it", () => {
  const ours = problems.filter((p) => !foreign(p));
  assert.deepEqual(ours, [], ours.join("\n"));
});
