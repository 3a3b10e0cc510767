// Feedback on results in ComfyUI's frontend: under a node that shows the
// batch a GANSample made, a like and a dislike button on each image (keys
// too: click an image, then L, D or 0 to clear, arrows to move). The marks
// are written into the Feedback node that steers that sampler through
// EvolveLatents, in its own format (liked, disliked, batch), so the next
// queue breeds the next batch from the liked images.
// After a round, the latents it saved (SaveLatents) are copied into the
// input folder and the round's LoadLatents reads them: the loop goes on
// with every queue. The template "feedback_loop" is such a loop.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const SAMPLERS = new Set(["GANSample"]);
const STEERED_BY = new Set(["EvolveLatents"]);
const STATE_FILE = "cozy_feedback";  // input subfolder of the loop's latents

function graph() {
  return app.graph;
}

function nodeById(id) {
  return graph().getNodeById(Number(id)) ?? graph().getNodeById(id);
}

// The node feeding input `name` of `node`, or null.
function upstream(node, name) {
  const input = node?.inputs?.find((i) => i.name === name);
  if (input?.link == null) return null;
  const link = graph().links[input.link] ?? graph().links.get?.(input.link);
  return link ? nodeById(link.origin_id) : null;
}

// The nodes fed by any output of `node`.
function downstream(node) {
  const out = [];
  for (const o of node?.outputs ?? [])
    for (const id of o.links ?? []) {
      const link = graph().links[id] ?? graph().links.get?.(id);
      if (link) out.push(nodeById(link.target_id));
    }
  return out.filter(Boolean);
}

function widget(node, name) {
  return node?.widgets?.find((w) => w.name === name);
}

function setWidget(node, name, value) {
  const w = widget(node, name);
  if (w) {
    w.value = value;
    w.callback?.(value);
  }
}

// For a node showing images: the sampler that made them, the steering node
// that fed the sampler's latent, its Feedback node and its LoadLatents.
function loopOf(viewer) {
  const sampler = SAMPLERS.has(viewer?.type) ? viewer : upstream(viewer, "images") ?? upstream(viewer, "image");
  if (!sampler || !SAMPLERS.has(sampler.type)) return null;
  const steer = upstream(sampler, "latent");
  const feedback = STEERED_BY.has(steer?.type) ? upstream(steer, "feedback") : null;
  const loader = steer ? upstream(steer, "latent") : null;
  const saver = steer ? downstream(steer).find((n) => n.type === "SaveLatents") : null;
  return { sampler, steer, feedback: feedback?.type === "Feedback" ? feedback : null,
    loader: loader?.type === "LoadLatents" ? loader : null, saver };
}

class FeedbackPanel {
  constructor(node) {
    this.node = node;
    this.marks = [];       // per image: 1 liked, -1 disliked, 0 none
    this.focus = 0;
    this.element = document.createElement("div");
    this.element.dataset.testid = "cozy-feedback";
    this.element.tabIndex = 0;
    Object.assign(this.element.style, { display: "grid", gridTemplateColumns: "repeat(4, 1fr)", gap: "4px",
      padding: "4px", outline: "none" });
    // Keys act on the panel whose image was clicked last, until a click
    // elsewhere, whatever holds the focus (the graph canvas takes it back).
    this.armed = false;
    document.addEventListener("keydown", (e) => {
      if (this.armed && this.element.isConnected && !/^(INPUT|TEXTAREA|SELECT)$/.test(e.target?.tagName ?? "")) this.key(e);
    }, true);
    document.addEventListener("pointerdown", (e) => {
      if (!this.element.contains(e.target)) this.armed = false;
    }, true);
  }

  show(images) {
    this.images = images;
    this.marks = images.map(() => 0);
    this.focus = 0;
    this.render();
    this.write();
  }

  render() {
    this.element.replaceChildren();
    this.images.forEach((ref, i) => {
      const cell = document.createElement("div");
      cell.dataset.testid = `cozy-feedback-image-${i}`;
      const mark = this.marks[i];
      Object.assign(cell.style, { position: "relative", border: `3px solid ${mark > 0 ? "#2e9e5b" : mark < 0 ? "#c62828" : "transparent"}`,
        outline: i === this.focus ? "1px dashed #888" : "none" });
      const img = document.createElement("img");
      const q = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type ?? "temp" });
      img.src = api.apiURL(`/view?${q}`);
      Object.assign(img.style, { width: "100%", imageRendering: "pixelated", display: "block" });
      img.addEventListener("pointerdown", (e) => {
        e.stopPropagation();
        this.focus = i;
        this.armed = true;
        this.render();
      });
      const bar = document.createElement("div");
      Object.assign(bar.style, { position: "absolute", bottom: "0", right: "0", display: "flex" });
      for (const [label, value, id] of [["\u{1F44D}", 1, "like"], ["\u{1F44E}", -1, "dislike"]]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = label;
        b.dataset.testid = `cozy-${id}-${i}`;
        b.title = id === "like" ? "like (L)" : "dislike (D)";
        Object.assign(b.style, { fontSize: "10px", padding: "0 2px", opacity: this.marks[i] === value ? "1" : "0.6" });
        b.addEventListener("pointerdown", (e) => e.stopPropagation());
        b.addEventListener("click", (e) => { e.stopPropagation(); this.armed = true; this.mark(i, value); });
        bar.append(b);
      }
      cell.append(img, bar);
      this.element.append(cell);
    });
  }

  mark(i, value) {
    this.marks[i] = this.marks[i] === value ? 0 : value;
    this.focus = i;
    this.render();
    this.write();
  }

  key(e) {
    const n = this.images?.length ?? 0;
    if (!n) return;
    const k = e.key.toLowerCase();
    if (k === "l") this.mark(this.focus, 1);
    else if (k === "d") this.mark(this.focus, -1);
    else if (k === "0") this.mark(this.focus, 0);
    else if (e.key === "ArrowRight") { this.focus = (this.focus + 1) % n; this.render(); }
    else if (e.key === "ArrowLeft") { this.focus = (this.focus + n - 1) % n; this.render(); }
    else return;
    e.preventDefault();
    e.stopPropagation();
  }

  // The marks, in the Feedback node's format.
  write() {
    const loop = loopOf(this.node);
    if (!loop?.feedback) return;
    const list = (v) => this.marks.map((m, i) => (m === v ? i : -1)).filter((i) => i >= 0).join(",");
    setWidget(loop.feedback, "batch", this.marks.length);
    setWidget(loop.feedback, "liked", list(1));
    setWidget(loop.feedback, "disliked", list(-1));
    graph().setDirtyCanvas(true, true);
  }
}

function panelOf(node) {
  if (node.cozyFeedback) return node.cozyFeedback;
  const panel = new FeedbackPanel(node);
  node.cozyFeedback = panel;
  node.addDOMWidget("feedback", "cozy-feedback", panel.element, { serialize: false, hideOnZoom: false,
    getMinHeight: () => 80 });
  node.setSize([Math.max(node.size[0], 360), Math.max(node.size[1], 380)]);
  return panel;
}

// Copies the latents a round saved into the input folder and points the
// round's LoadLatents at them.
async function carry(loop, saved) {
  const q = new URLSearchParams({ filename: saved.filename, subfolder: saved.subfolder ?? "", type: saved.type ?? "output" });
  const data = await (await api.fetchApi(`/view?${q}`)).blob();
  const form = new FormData();
  const name = `loop_${loop.loader.id}.pt`;
  form.append("image", new File([data], name));
  form.append("subfolder", STATE_FILE);
  form.append("type", "input");
  form.append("overwrite", "true");
  const r = await api.fetchApi("/upload/image", { method: "POST", body: form });
  if (!r.ok) throw new Error(`cannot keep the round's latents: ${r.status}`);
  setWidget(loop.loader, "file", `${STATE_FILE}/${name}`);
}

const saved = new Map();  // SaveLatents node id -> its file, this run
const shown = new Map();  // viewer node id -> its loop, this run

app.registerExtension({
  name: "cozy.Feedback",
  setup() {
    api.addEventListener("execution_start", () => { saved.clear(); shown.clear(); });
    api.addEventListener("executed", ({ detail }) => {
      const node = nodeById(detail?.display_node ?? detail?.node);
      if (!node) return;
      const files = detail.output?.files ?? [];
      if (node.type === "SaveLatents" && files.length) saved.set(String(node.id), files[files.length - 1]);
      const images = detail.output?.images;
      if (!images?.length) return;
      const loop = loopOf(node);
      if (!loop) return;
      panelOf(node).show(images);
      shown.set(String(node.id), loop);
    });
    // The round is over: what it saved is what the next one starts from.
    api.addEventListener("execution_success", async () => {
      for (const [viewer, loop] of shown) {
        const file = loop.saver && saved.get(String(loop.saver.id));
        if (!loop.loader || !file) continue;
        try {
          await carry(loop, file);
          // Which round the next one starts from (for the user's eyes and for tests).
          const panel = nodeById(viewer)?.cozyFeedback;
          if (panel) panel.element.dataset.carried = file.filename;
        } catch (e) {
          console.warn(`[cozy] ${e.message}`);
        }
      }
      shown.clear();
    });
  },
});
