// Layouts and interaction logs (docs/interaction.md) in the browser: the
// same operations, in the same order and the same double arithmetic, as
// ReplayInteractions (plugins/interaction/layout_io.cpp), so a log recorded
// here replays headless to the same layout.

export const KINDS = ["rectangle", "ellipse", "triangle"];
export const TEXTURES = ["solid", "stripes", "checker", "dots", "noise"];

export function emptyLayout(background = "#f4f1ea") {
  return { format: "cozy-layout", version: 1, background, shapes: [] };
}

export function newLog(operations = []) {
  return { format: "cozy-interaction-log", version: 1, operations };
}

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

// A shape with every field, as the C++ side writes it.
export function normalShape(s) {
  const texture = typeof s.texture === "string" ? { kind: s.texture } : s.texture ?? {};
  const out = {
    id: s.id,
    shape: s.shape ?? "rectangle",
    center: [...(s.center ?? [0.5, 0.5])],
    size: [...(s.size ?? [0.3, 0.3])],
    rotation: s.rotation ?? 0,
    color: s.color ?? "#808080",
    texture: { kind: texture.kind ?? "solid", scale: texture.scale ?? 0.05, angle: texture.angle ?? 0 },
    z: s.z ?? 0,
  };
  if (s.class) out.class = s.class;
  return out;
}

// Applies one operation to `layout` (changed in place); throws with the
// operation's index and the shape, as the C++ replay does.
export function apply(layout, op, index = 0) {
  const where = `operation ${index} (${op.op ?? "?"})`;
  if (op.op === "add") {
    if (layout.shapes.some((s) => s.id === op.shape.id)) throw new Error(`${where}: a shape '${op.shape.id}' is already in the layout`);
    layout.shapes.push(normalShape(op.shape));
    return;
  }
  const at = layout.shapes.findIndex((s) => s.id === op.id);
  if (at < 0) throw new Error(`${where}: no shape '${op.id}' in the layout`);
  const s = layout.shapes[at];
  switch (op.op) {
    case "drag":
      s.center = [s.center[0] + (op.dx ?? 0), s.center[1] + (op.dy ?? 0)];
      break;
    case "move":
      s.center = [...op.center];
      break;
    case "scale": {
      const f = op.factor ?? 1;
      s.size = [s.size[0] * (op.fx ?? f), s.size[1] * (op.fy ?? f)];
      break;
    }
    case "rotate":
      s.rotation = (s.rotation + (op.degrees ?? 0)) % 360;  // C's fmod: the dividend's sign
      break;
    case "recolor":
      s.color = op.color;
      break;
    case "retexture":
      s.texture = normalShape({ id: s.id, texture: op.texture ?? "solid" }).texture;
      break;
    case "reclass":
      if (op.class) s.class = op.class;
      else delete s.class;
      break;
    case "reorder":
      s.z = op.z ?? s.z;
      break;
    case "delete":
      layout.shapes.splice(at, 1);
      break;
    default:
      throw new Error(`${where}: unknown operation`);
  }
}

export function replay(base, log) {
  const layout = clone(base);
  (log.operations ?? log).forEach((op, i) => apply(layout, op, i));
  return layout;
}
