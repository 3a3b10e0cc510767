// The LayoutCanvas node's editor in ComfyUI's frontend: a canvas showing
// the layout's whole frame, where the user adds shapes, drags them, scales
// them by their corner handles, rotates them by the handle above, and sets
// colour, class and texture beside it. Every edit is an operation of the
// interaction log (layout.js), kept in the node's properties; the layout it
// gives is written into the node's `layout` input, so the prompt carries it.
import { app } from "../../scripts/app.js";
import { KINDS, TEXTURES, apply, emptyLayout, newLog, normalShape, replay } from "./layout.js";

const CLASSES = ["", "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
  "Ankle boot"];
const SIZE = 320;          // the canvas element, CSS pixels (the frame is square)
const HANDLE = 7;          // half the side of a corner handle, pixels
const ROTATE_ARM = 26;     // from the top edge to the rotation handle, pixels

function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// Pixel geometry of a shape on a canvas of side `n`: centre, half sizes, angle.
function geometry(s, n) {
  return { cx: s.center[0] * n, cy: s.center[1] * n, hw: (s.size[0] * n) / 2, hh: (s.size[1] * n) / 2,
    theta: (s.rotation * Math.PI) / 180 };
}

// A point in a shape's own frame (unrotated, origin at its centre).
function toLocal(g, x, y) {
  const dx = x - g.cx, dy = y - g.cy, c = Math.cos(g.theta), s = Math.sin(g.theta);
  return { x: c * dx + s * dy, y: -s * dx + c * dy };
}

function toScreen(g, x, y) {
  const c = Math.cos(g.theta), s = Math.sin(g.theta);
  return { x: g.cx + c * x - s * y, y: g.cy + s * x + c * y };
}

function inside(s, g, p) {
  const q = toLocal(g, p.x, p.y);
  if (s.shape === "ellipse") return (q.x / g.hw) ** 2 + (q.y / g.hh) ** 2 <= 1;
  if (Math.abs(q.x) > g.hw || Math.abs(q.y) > g.hh) return false;
  if (s.shape === "triangle") return Math.abs(q.x) <= g.hw * ((q.y + g.hh) / (2 * g.hh));  // apex up
  return true;
}

function pathOf(ctx, s, g) {
  ctx.beginPath();
  if (s.shape === "ellipse") ctx.ellipse(0, 0, g.hw, g.hh, 0, 0, 2 * Math.PI);
  else if (s.shape === "triangle") { ctx.moveTo(0, -g.hh); ctx.lineTo(g.hw, g.hh); ctx.lineTo(-g.hw, g.hh); ctx.closePath(); }
  else ctx.rect(-g.hw, -g.hh, 2 * g.hw, 2 * g.hh);
}

// A light drawing of the texture, so the user sees which one a shape has.
function drawTexture(ctx, s, g, n) {
  const kind = s.texture.kind;
  if (kind === "solid") return;
  const period = Math.max(4, s.texture.scale * n);
  ctx.save();
  ctx.rotate((s.texture.angle * Math.PI) / 180);
  ctx.fillStyle = ctx.strokeStyle = "rgba(0,0,0,0.28)";
  ctx.lineWidth = period / 3;
  const r = Math.hypot(g.hw, g.hh);
  for (let x = -r; x <= r; x += period) {
    for (let y = -r; y <= r; y += period) {
      if (kind === "stripes") { if (y === -r) { ctx.beginPath(); ctx.moveTo(x, -r); ctx.lineTo(x, r); ctx.stroke(); } }
      else if (kind === "checker") { if ((Math.round((x + r) / period) + Math.round((y + r) / period)) % 2) ctx.fillRect(x, y, period, period); }
      else if (kind === "dots") { ctx.beginPath(); ctx.arc(x, y, period / 4, 0, 2 * Math.PI); ctx.fill(); }
      else if (kind === "noise") { const h = Math.sin(x * 12.9898 + y * 78.233) * 43758.5453; if (h - Math.floor(h) > 0.5) ctx.fillRect(x, y, period / 2, period / 2); }
    }
  }
  ctx.restore();
}

class LayoutEditor {
  constructor(node, widget) {
    this.node = node;
    this.widget = widget;     // the `layout` STRING input
    this.selected = null;
    this.pending = null;      // the operation a pointer gesture is making
    this.gesture = null;
    this.canvas = el("canvas", { "data-testid": "cozy-layout-canvas", tabindex: "0",
      style: { width: `${SIZE}px`, height: `${SIZE}px`, cursor: "crosshair", outline: "1px solid #555",
        background: "#fff", touchAction: "none" } });
    this.canvas.width = this.canvas.height = SIZE * (window.devicePixelRatio || 1);
    const button = (label, testid, onclick) => el("button", { "data-testid": testid, type: "button", onclick,
      style: { margin: "1px", fontSize: "11px", padding: "2px 4px" } }, [label]);
    this.color = el("input", { type: "color", value: "#d8452b", "data-testid": "cozy-layout-color",
      onchange: () => this.selectedDo((s) => ({ op: "recolor", id: s.id, color: this.color.value })) });
    this.klass = el("select", { "data-testid": "cozy-layout-class",
      onchange: () => this.selectedDo((s) => ({ op: "reclass", id: s.id, class: this.klass.value })) },
    CLASSES.map((c) => el("option", { value: c }, [c || "(no class)"])));
    this.texture = el("select", { "data-testid": "cozy-layout-texture",
      onchange: () => this.selectedDo((s) => ({ op: "retexture", id: s.id,
        texture: { kind: this.texture.value, scale: s.texture.scale, angle: s.texture.angle } })) },
    TEXTURES.map((t) => el("option", { value: t }, [t])));
    const controls = el("div", { style: { display: "flex", flexDirection: "column", gap: "3px", marginLeft: "6px",
      fontSize: "11px", color: "var(--input-text, #ddd)", minWidth: "96px" } }, [
      ...KINDS.map((k) => button(`+ ${k}`, `cozy-layout-add-${k}`, () => this.add(k))),
      el("label", {}, ["colour ", this.color]),
      el("label", {}, ["class", el("br"), this.klass]),
      el("label", {}, ["texture", el("br"), this.texture]),
      button("raise", "cozy-layout-raise", () => this.restack(+1)),
      button("lower", "cozy-layout-lower", () => this.restack(-1)),
      button("delete", "cozy-layout-delete", () => this.selectedDo((s) => ({ op: "delete", id: s.id }))),
      button("undo", "cozy-layout-undo", () => this.undo()),
    ]);
    this.element = el("div", { "data-testid": "cozy-layout-editor",
      style: { display: "flex", alignItems: "flex-start", padding: "4px" } }, [this.canvas, controls]);
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("keydown", (e) => this.key(e));
    this.load();
  }

  // The base (an empty layout with the background) and the log, from the
  // node's properties; a layout written into the input by hand (or by a
  // graph file) starts a log of `add` operations.
  load() {
    let layout;
    try { layout = JSON.parse(this.widget.value); } catch { layout = emptyLayout(); }
    if (!layout || layout.format !== "cozy-layout") layout = emptyLayout();
    const kept = this.node.properties?.cozy_interaction_log;
    const base = emptyLayout(layout.background ?? "#f4f1ea");
    let log = kept?.operations ? kept.operations : null;
    if (log) {
      try {
        if (JSON.stringify(replay(base, log).shapes) !== JSON.stringify((layout.shapes ?? []).map(normalShape))) log = null;
      } catch { log = null; }
    }
    this.base = base;
    this.log = log ?? (layout.shapes ?? []).map((s) => ({ op: "add", shape: normalShape(s) }));
    this.commit();
  }

  // The input's value changed outside the editor (a loaded graph, a paste):
  // start again from it.
  sync() {
    if (this.widget.value !== this.written) this.load();
  }

  layout() {
    this.sync();
    const layout = replay(this.base, this.log);
    if (this.pending) apply(layout, this.pending, this.log.length);
    return layout;
  }

  // Writes the layout into the input and the log into the properties.
  commit() {
    const layout = replay(this.base, this.log);
    this.written = JSON.stringify(layout);
    this.widget.value = this.written;
    this.node.properties = this.node.properties ?? {};
    this.node.properties.cozy_interaction_log = newLog(this.log.map((op) => ({ ...op })));
    if (this.selected && !layout.shapes.some((s) => s.id === this.selected)) this.selected = null;
    this.syncControls(layout);
    this.draw();
    this.node.graph?.setDirtyCanvas?.(true, true);
  }

  push(op) {
    this.sync();
    this.log.push(op);
    this.commit();
  }

  undo() {
    this.sync();
    if (!this.log.length) return;
    this.log.pop();
    this.commit();
  }

  selectedShape(layout = this.layout()) {
    return layout.shapes.find((s) => s.id === this.selected) ?? null;
  }

  selectedDo(make) {
    const s = this.selectedShape();
    if (s) this.push(make(s));
  }

  add(kind) {
    const layout = this.layout();
    let n = layout.shapes.length + 1;
    while (layout.shapes.some((s) => s.id === `shape${n}`)) n++;
    const z = layout.shapes.reduce((m, s) => Math.max(m, s.z + 1), 0);
    const shape = { id: `shape${n}`, shape: kind, center: [0.5, 0.5], size: [0.3, 0.3], rotation: 0,
      color: this.color.value, texture: { kind: this.texture.value, scale: 0.05, angle: 0 }, z };
    if (this.klass.value) shape.class = this.klass.value;
    this.selected = shape.id;
    this.push({ op: "add", shape });
  }

  restack(direction) {
    const layout = this.layout(), s = this.selectedShape(layout);
    if (!s) return;
    const others = layout.shapes.filter((o) => o.id !== s.id).map((o) => o.z);
    if (!others.length) return;
    this.push({ op: "reorder", id: s.id, z: direction > 0 ? Math.max(...others) + 1 : Math.min(...others) - 1 });
  }

  syncControls(layout) {
    const s = this.selectedShape(layout);
    if (!s) return;
    this.color.value = /^#[0-9a-f]{6}$/i.test(s.color) ? s.color.toLowerCase() : this.color.value;
    this.klass.value = s.class ?? "";
    this.texture.value = s.texture.kind;
  }

  // Pointer position in canvas pixels (of SIZE), whatever the editor's zoom.
  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * SIZE, y: ((e.clientY - r.top) / r.height) * SIZE };
  }

  // What is under p: a handle of the selected shape first, then the topmost shape.
  hit(p) {
    const layout = this.layout();
    const s = this.selectedShape(layout);
    if (s) {
      const g = geometry(s, SIZE);
      const rot = toScreen(g, 0, -g.hh - ROTATE_ARM);
      if (Math.hypot(p.x - rot.x, p.y - rot.y) <= HANDLE + 2) return { kind: "rotate", shape: s };
      for (const [sx, sy] of [[-1, -1], [1, -1], [1, 1], [-1, 1]]) {
        const c = toScreen(g, sx * g.hw, sy * g.hh);
        if (Math.abs(p.x - c.x) <= HANDLE + 2 && Math.abs(p.y - c.y) <= HANDLE + 2) return { kind: "scale", shape: s };
      }
    }
    const order = layout.shapes.map((shape, i) => ({ shape, i })).sort((a, b) => b.shape.z - a.shape.z || b.i - a.i);
    for (const { shape } of order) if (inside(shape, geometry(shape, SIZE), p)) return { kind: "drag", shape };
    return null;
  }

  down(e) {
    e.stopPropagation();
    this.canvas.focus();
    const p = this.point(e);
    const target = this.hit(p);
    if (!target) { this.selected = null; this.draw(); return; }
    this.selected = target.shape.id;
    this.syncControls(this.layout());
    const g = geometry(target.shape, SIZE);
    this.gesture = { ...target, start: p, g, angle0: Math.atan2(p.y - g.cy, p.x - g.cx) };
    this.canvas.setPointerCapture?.(e.pointerId);
    this.draw();
  }

  move(e) {
    if (!this.gesture) {
      const t = this.hit(this.point(e));
      this.canvas.style.cursor = !t ? "crosshair" : t.kind === "drag" ? "move" : t.kind === "rotate" ? "grab" : "nwse-resize";
      return;
    }
    e.stopPropagation();
    const p = this.point(e), { kind, shape, start, g } = this.gesture;
    if (kind === "drag") {
      this.pending = { op: "drag", id: shape.id, dx: (p.x - start.x) / SIZE, dy: (p.y - start.y) / SIZE };
    } else if (kind === "scale") {
      const q = toLocal(g, p.x, p.y);
      this.pending = { op: "scale", id: shape.id, fx: Math.max(Math.abs(q.x), 2) / g.hw, fy: Math.max(Math.abs(q.y), 2) / g.hh };
    } else {
      let degrees = ((Math.atan2(p.y - g.cy, p.x - g.cx) - this.gesture.angle0) * 180) / Math.PI;
      if (degrees > 180) degrees -= 360;
      if (degrees <= -180) degrees += 360;
      this.pending = { op: "rotate", id: shape.id, degrees };
    }
    this.draw();
  }

  up(e) {
    if (!this.gesture) return;
    e.stopPropagation();
    this.move(e);
    const op = this.pending;
    this.gesture = null;
    this.pending = null;
    const moved = op && ((op.op === "drag" && (op.dx || op.dy)) || (op.op === "scale" && (op.fx !== 1 || op.fy !== 1)) ||
      (op.op === "rotate" && op.degrees));
    if (moved) this.push(op);
    else this.draw();
  }

  key(e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "z") { this.undo(); e.preventDefault(); e.stopPropagation(); }
    else if (e.key === "Delete" || e.key === "Backspace") {
      this.selectedDo((s) => ({ op: "delete", id: s.id }));
      e.preventDefault();
      e.stopPropagation();
    }
  }

  draw() {
    const ctx = this.canvas.getContext("2d"), n = SIZE, scale = this.canvas.width / SIZE;
    const layout = this.layout();
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.fillStyle = layout.background ?? "#ffffff";
    ctx.fillRect(0, 0, n, n);
    const order = layout.shapes.map((shape, i) => ({ shape, i })).sort((a, b) => a.shape.z - b.shape.z || a.i - b.i);
    for (const { shape: s } of order) {
      const g = geometry(s, n);
      ctx.save();
      ctx.translate(g.cx, g.cy);
      ctx.rotate(g.theta);
      pathOf(ctx, s, g);
      ctx.fillStyle = s.color;
      ctx.fill();
      ctx.clip();
      drawTexture(ctx, s, g, n);
      ctx.restore();
      if (s.class) {
        ctx.fillStyle = "rgba(0,0,0,0.65)";
        ctx.font = "11px sans-serif";
        ctx.fillText(s.class, g.cx - g.hw, g.cy - g.hh - 3);
      }
    }
    const s = this.selectedShape(layout);
    if (!s) return;
    const g = geometry(s, n);
    ctx.save();
    ctx.translate(g.cx, g.cy);
    ctx.rotate(g.theta);
    ctx.strokeStyle = "#1e88e5";
    ctx.lineWidth = 1.5;
    ctx.setLineDash([4, 3]);
    ctx.strokeRect(-g.hw, -g.hh, 2 * g.hw, 2 * g.hh);
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(0, -g.hh);
    ctx.lineTo(0, -g.hh - ROTATE_ARM);
    ctx.stroke();
    ctx.fillStyle = "#ffffff";
    for (const [sx, sy] of [[-1, -1], [1, -1], [1, 1], [-1, 1]]) {
      ctx.fillRect(sx * g.hw - HANDLE, sy * g.hh - HANDLE, 2 * HANDLE, 2 * HANDLE);
      ctx.strokeRect(sx * g.hw - HANDLE, sy * g.hh - HANDLE, 2 * HANDLE, 2 * HANDLE);
    }
    ctx.beginPath();
    ctx.arc(0, -g.hh - ROTATE_ARM, HANDLE, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
    ctx.restore();
  }
}

app.registerExtension({
  name: "cozy.LayoutCanvas",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "LayoutCanvas") return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      const input = this.widgets?.find((w) => w.name === "layout");
      if (!input) return result;
      const editor = new LayoutEditor(this, input);
      this.cozyLayoutEditor = editor;
      // The JSON stays the input's value (it is what the prompt sends); the
      // canvas is the way to edit it.
      input.hidden = true;
      if (input.element) input.element.style.display = "none";
      const widget = this.addDOMWidget("layout_editor", "cozy-layout", editor.element, {
        serialize: false, hideOnZoom: false, getMinHeight: () => SIZE + 12, getMaxHeight: () => SIZE + 12,
      });
      widget.computeSize = (width) => [width, SIZE + 12];
      this.setSize([Math.max(this.size[0], SIZE + 130), Math.max(this.size[1], SIZE + 80)]);
      return result;
    };
    // A value set from outside (a graph loaded through the API format) shows
    // at the next frame.
    const drawn = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function () {
      this.cozyLayoutEditor?.sync();
      return drawn?.apply(this, arguments);
    };
    // A workflow loaded: the input's value and the kept log are read again.
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = configured?.apply(this, arguments);
      this.cozyLayoutEditor?.load();
      return result;
    };
  },
});
