// The explorer's browser engine: from the bundle the kernel sends once
// (featviz/widgets/explorer_local.py, browser_bundle), every state's payload, made here.
//
//   const local = openBundle(meta, bytes);          // once: networks, images, noise
//   const {data, meta} = payloadFor(local, {image: 3, snapshot: 8,
//                                           perturbation: {rotate: 15}, token: 7});
//   const found = inspect(local, {image: 3, snapshot: 8, perturbation: {}},
//                         "conv2", 5, 4, 4);         // the convolution inspector's dict
//
// `data` and `meta` are what Python's ExplorerData.payload(image, snapshot,
// Perturbation(**perturbation)) sends (featviz/widgets/explorer_payload.py, build_payload,
// with meta.token added): the picture draws them the same way. `inspect` gives
// featviz/widgets/explorer_inspect.py's inspection(...) dict. Python is the reference:
// tests/js/explorer_local.test.mjs holds both to it. Pure functions, no DOM or Node API.

import { decode, forward, softmax, argmax } from "./forward.js";
import { perturb, NO_CHANGE } from "./imageops.js";
import { colorScale, limits, formatG } from "./style.js";
import { bytesFrom } from "./codec.js";

//: input channels whose patch, kernel and products are sent (explorer_inspect.py)
export const MAX_CHANNELS_SHOWN = 16;

const f32 = Math.fround;
const product = (shape) => shape.reduce((a, b) => a * b, 1);
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ------------------------------------------------------------------ bytes

// The bundle's bytes: an ArrayBuffer, a DataView or typed array (anywidget hands buffers
// over as DataView; Node gives a Buffer), or base64 text.
const asBytes = (v) => bytesFrom(v, "the explorer's bundle");

function checkRange(bytes, start, size, what) {
  if (!(start >= 0) || start + size > bytes.byteLength) {
    throw new RangeError(`bundle: ${what} (${size} bytes at ${start}) lies outside its ` +
      `${bytes.byteLength} bytes`);
  }
}

// `count` little-endian float32 values at `start`: a view when aligned, else a copy.
function float32s(bytes, start, count, what) {
  checkRange(bytes, start, 4 * count, what);
  const at = bytes.byteOffset + start;
  if (LITTLE && at % 4 === 0) return new Float32Array(bytes.buffer, at, count);
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, at, 4 * count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

// IEEE half -> float32, exactly, for every one of the 65536 bit patterns.
let HALF = null;
function halfTable() {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    HALF[h] = e === 0 ? sign * m * 2 ** -24                        // zero, subnormal
      : e === 31 ? (m ? NaN : sign * Infinity)
        : sign * (1024 + m) * 2 ** (e - 25);                     // (1 + m/1024) 2^(e-15)
  }
  return HALF;
}

// A snapshot's weights block as little-endian float32 bytes, what decode() reads.
function weightBytes(bytes, block, what) {
  const {start, count, dtype} = block;
  const out = new Float32Array(count);
  if (dtype === "float16") {
    checkRange(bytes, start, 2 * count, what);
    const table = halfTable();
    const view = new DataView(bytes.buffer, bytes.byteOffset + start, 2 * count);
    for (let i = 0; i < count; i++) out[i] = table[view.getUint16(2 * i, true)];
  } else if (dtype === "float32") {
    out.set(float32s(bytes, start, count, what));
  } else {
    throw new Error(`bundle: ${what} has dtype ${JSON.stringify(dtype)}; expected float16 or ` +
      "float32");
  }
  if (LITTLE) return new Uint8Array(out.buffer);
  const le = new Uint8Array(4 * count), view = new DataView(le.buffer);
  for (let i = 0; i < count; i++) view.setFloat32(4 * i, out[i], true);
  return le;
}

// ------------------------------------------------------------------ the bundle

/**
 * The bundle browser_bundle(data) makes, opened: every snapshot's network decoded for
 * forward.js, the images as Float32Array views, the noise field, layers, labels, classes.
 *
 * @param {object|string} meta  the bundle's meta (or its JSON text)
 * @param {ArrayBuffer|ArrayBufferView|string} bytes  its bytes (or base64 text)
 */
export function openBundle(meta, bytes) {
  const m = typeof meta === "string" ? JSON.parse(meta) : meta;
  const b = asBytes(bytes);
  const shape = m.images.shape;            // [N, C, H, W]
  const imageShape = shape.slice(1), size = product(imageShape);
  const all = float32s(b, m.images.start, shape[0] * size, "the images");
  const images = [];
  for (let i = 0; i < shape[0]; i++) images.push(all.subarray(i * size, (i + 1) * size));
  const noiseSize = product(m.noise.shape);
  if (noiseSize !== size) {
    throw new Error(`bundle: the noise field is ${m.noise.shape.join("x")}, the images ` +
      `${imageShape.join("x")}`);
  }
  const snapshots = m.snapshots.map((s, i) => {
    const what = `snapshot ${i} (${s.label})`;
    const net = decode({...s.net, weights: weightBytes(b, s.weights, `${what}'s weights`)});
    const convAt = {};
    net.steps.forEach((step, k) => {
      if (step.kind === "conv2d" && step.name != null && !(step.name in convAt)) {
        convAt[step.name] = k;
      }
    });
    const firstConv = net.steps.find((step) => step.kind === "conv2d");
    return {label: s.label, net, filters: s.filters || {}, convAt,
      firstConv: firstConv ? firstConv.name : null};
  });
  return {
    bytes: b, snapshots, images, imageShape,
    imagesCount: m.images_count ?? shape[0],
    noise: float32s(b, m.noise.start, noiseSize, "the noise field"),
    layers: m.layers.map((L) => ({...L, grid: [...L.grid]})),
    kernelOf: Object.fromEntries(m.layers.map((L) => [L.name, L.kernel_of])),
    labels: m.labels ?? null,
    classes: m.classes ?? null,
    cache: new Map(),   // the last few states' forward passes (inspect reuses them)
  };
}

function className(local, k) {
  const c = local.classes;
  return c && k >= 0 && k < c.length ? String(c[k]) : String(k);
}

// ------------------------------------------------------------------ the state

// The sliders as Perturbation(**perturbation) takes them: the six fields, unknown keys refused.
function settingsOf(perturbation) {
  const p = {...NO_CHANGE};
  for (const [key, value] of Object.entries(perturbation ?? {})) {
    if (!(key in NO_CHANGE)) {
      throw new TypeError(`unknown perturbation ${JSON.stringify(key)}; the explorer's are ` +
        Object.keys(NO_CHANGE).join(", "));
    }
    p[key] = value;
  }
  return p;
}

const isNone = (p) => Object.keys(NO_CHANGE).every((k) => p[k] === NO_CHANGE[k]);

function checkIndex(value, count, what) {
  if (!Number.isInteger(value) || value < 0 || value >= count) {
    throw new RangeError(`${what} must be an integer in 0..${count - 1}, got ${value}`);
  }
}

const CACHED = 4;

// One state's forward pass: {settings, x (the perturbed input), logits, maps}, cached.
function run(local, {image = 0, snapshot = 0, perturbation = {}} = {}) {
  checkIndex(image, local.images.length, "image");
  checkIndex(snapshot, local.snapshots.length, "snapshot");
  const settings = settingsOf(perturbation);
  const key = JSON.stringify([image, snapshot, Object.keys(NO_CHANGE).map((k) => settings[k])]);
  const hit = local.cache.get(key);
  if (hit) {
    local.cache.delete(key);
    local.cache.set(key, hit);
    return hit;
  }
  const source = local.images[image];
  const x = isNone(settings) ? source
    : perturb(source, settings, settings.noise > 0 ? local.noise : null, local.imageShape);
  const {logits, maps} = forward(local.snapshots[snapshot].net, x);
  const found = {image, snapshot, settings, x, logits, maps};
  local.cache.set(key, found);
  while (local.cache.size > CACHED) local.cache.delete(local.cache.keys().next().value);
  return found;
}

/**
 * The output of the first `count` steps of `net` (from forward.js's decode) on `input`:
 * what step `count` reads. {data: Float32Array, shape}; count 0 gives the input.
 */
export function runSteps(net, input, count) {
  const steps = net.steps.slice(0, count);
  const shape = count > 0 ? steps[count - 1].shape : net.inputShape;
  const {logits} = forward({...net, steps}, input);
  return {data: logits, shape};
}

// ------------------------------------------------------------------ numbers

// numpy's rint: the nearest integer, halves to the even one.
function rint(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Round the decimal digit string `digits` to `keep` digits, half to even (style.js's).
// Python's repr() of what a message quotes: str, int, float, bool, None, a list as a tuple.
function pyRepr(v) {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "string") {
    const q = v.includes("'") && !v.includes('"') ? '"' : "'";
    let out = "";
    for (const ch of v) {
      const code = ch.codePointAt(0);
      if (ch === "\\" || ch === q) out += "\\" + ch;
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (ch === "\t") out += "\\t";
      else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
      else out += ch;
    }
    return q + out + q;
  }
  if (typeof v === "number") {
    if (Number.isInteger(v) && Math.abs(v) < 2 ** 53) return String(v);
    if (Number.isNaN(v)) return "nan";
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    const [m, e] = v.toExponential().split("e");   // the shortest digits, as repr's
    const x = Number(e);
    if (x < -4 || x >= 16) {
      return `${m}e${x < 0 ? "-" : "+"}${String(Math.abs(x)).padStart(2, "0")}`;
    }
    const s = String(v);
    return s.includes(".") ? s : s + ".0";
  }
  if (Array.isArray(v)) return `(${v.map(pyRepr).join(", ")}${v.length === 1 ? "," : ""})`;
  return String(v);
}

// Perturbation.describe(): the changes in words (empty when none).
export function describe(perturbation) {
  const p = settingsOf(perturbation);
  const bits = [];
  if (p.shift_x !== 0 || p.shift_y !== 0) {
    bits.push(`shifted (${formatG(p.shift_x)}, ${formatG(p.shift_y)}) px`);
  }
  if (p.rotate !== 0) bits.push(`rotated ${formatG(p.rotate)}°`);
  if (p.scale !== 1) bits.push(`scaled ${formatG(p.scale)}x`);
  if (p.erase !== 0) bits.push(`${pyRepr(p.erase)}x${pyRepr(p.erase)} patch erased`);
  if (p.noise !== 0) bits.push(`noise ${formatG(p.noise)}`);
  return bits.join(", ");
}

// ------------------------------------------------------------------ the payload

// Byte blocks end to end, each at a multiple of 4 (explorer_payload.Packer), laid out first.
class Layout {
  constructor() { this.size = 0; }
  add(n) {
    const at = this.size;
    this.size += n;
    this.size += (4 - (this.size % 4)) % 4;
    return at;
  }
}

// quantize_runs for one map: lo, hi (its smallest and largest finite values, 0 without
// any), scale = (hi - lo) / 255 in float32; q = rint((v - lo) / scale) clipped to 0..255,
// each step in float32 as numpy does it; a non-finite value is sent as lo.
function quantizeMap(src, out, at) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (v < lo) lo = v;                 // NaN compares false: skipped, as are infinities
    if (v > hi) hi = v;
  }
  if (lo === -Infinity || lo === Infinity) {
    // the finite values only
    lo = Infinity; hi = -Infinity;
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    if (!Number.isFinite(lo)) lo = 0;
    if (!Number.isFinite(hi)) hi = 0;
  } else if (hi === Infinity) {
    hi = -Infinity;
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      if (Number.isFinite(v) && v > hi) hi = v;
    }
  }
  lo = f32(lo); hi = f32(hi);
  const scale = f32(f32(hi - lo) / 255);
  const div = scale > 0 ? scale : 1;
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (!Number.isFinite(v)) { out[at + i] = 0; continue; }
    const q = rint(f32(f32(v - lo) / div));
    out[at + i] = q < 0 ? 0 : q > 255 ? 255 : q;   // NaN (inf / inf) -> 0, as uint8 of it
  }
  return [lo, hi, scale];
}

// _picture: the input (C, H, W) as display pixels (H, W, 3) uint8, one min-max stretch over
// all channels, a grey image drawn grey; the arithmetic in float32 as numpy's.
function picture(x, [C, H, W], out, at) {
  const n = H * W;
  let plane = x, channels = C;
  if (C !== 1 && C !== 3) {
    plane = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < C; c++) s = f32(s + x[c * n + i]);
      plane[i] = f32(s / C);
    }
    channels = 1;
  }
  let lo = Infinity, hi = -Infinity, nan = false;
  for (let i = 0; i < channels * n; i++) {
    const v = plane[i];
    if (Number.isNaN(v)) nan = true;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const stretch = !nan && hi > lo, span = f32(hi - lo);
  for (let c = 0; c < 3; c++) {
    const from = channels === 1 ? 0 : c;
    for (let i = 0; i < n; i++) {
      const v = stretch ? f32(f32(f32(plane[from * n + i] - lo) / span) * 255) : 0;
      const q = rint(v);
      out[at + 3 * i + c] = q < 0 ? 0 : q > 255 ? 255 : q;
    }
  }
}

function words(local, r, probs) {
  const w = {image: r.image, images: local.imagesCount, perturbed: describe(r.settings),
    training: local.snapshots.length > 1 ? local.snapshots[r.snapshot].label : ""};
  if (probs) {
    const k = argmax(probs);
    const order = Array.from(probs, (p, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
    w.prediction = {name: className(local, k), p: probs[k],
      top: order.slice(0, 3).map((t) => [className(local, t), probs[t]])};
  }
  if (local.labels) {
    const truth = Number(local.labels[r.image]);
    w.label = className(local, truth);
    if (probs) w.correct = argmax(probs) === truth;
  }
  return w;
}

/**
 * One state's payload, as ExplorerData.payload sends it: {data: Uint8Array, meta}.
 *
 * @param {object} local  from openBundle
 * @param {{image?: number, snapshot?: number, perturbation?: object, token?: any}} state
 *   perturbation: the explorer's sliders {shift_x, shift_y, rotate, scale, erase, noise}
 */
export function payloadFor(local, state = {}) {
  const r = run(local, state);
  const snap = local.snapshots[r.snapshot];
  const layout = new Layout();
  const plan = local.layers.map((L) => {
    const map = r.maps[L.name];
    if (!map) throw new Error(`snapshot ${JSON.stringify(snap.label)} has no layer ${L.name}`);
    const [C, H, W] = map.shape;
    const p = {L, map, C, n: H * W, start: layout.add(C * H * W), floats: layout.add(16 * C)};
    const filters = L.kernel_of != null ? snap.filters[L.kernel_of] : undefined;
    if (filters) {
      const count = product(filters.dims), rows = filters.dims[0];
      p.kernel = {filters, count, rows, start: layout.add(count), floats: layout.add(8 * rows)};
    }
    return p;
  });
  const [C0, H0, W0] = local.imageShape;
  const inputAt = layout.add(H0 * W0 * 3);
  const data = new Uint8Array(layout.size);
  const view = new DataView(data.buffer);
  const layers = plan.map((p) => {
    const {L, map, C, n} = p;
    const ends = [];
    const offsets = new Float32Array(C), scales = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      const [lo, hi, scale] = quantizeMap(map.data.subarray(c * n, (c + 1) * n), data,
        p.start + c * n);
      ends.push([lo, hi]);
      offsets[c] = lo; scales[c] = scale;
    }
    const [cmap, lo, hi] = colorScale(ends.flat());
    const [plo, phi] = limits(ends, "per-map");
    for (let c = 0; c < C; c++) {
      view.setFloat32(p.floats + 4 * c, offsets[c], true);
      view.setFloat32(p.floats + 4 * (C + c), scales[c], true);
      view.setFloat32(p.floats + 4 * (2 * C + c), plo[c], true);
      view.setFloat32(p.floats + 4 * (3 * C + c), phi[c], true);
    }
    const meta = {name: L.name, shape: [...map.shape], start: p.start, floats: p.floats, cmap,
      shared: [lo, hi], grid: [...L.grid], conv: L.conv, kernel_of: L.kernel_of, kernel: null};
    if (p.kernel) {
      const {filters, count, rows} = p.kernel;
      checkRange(local.bytes, filters.start, count, `the filters of ${L.kernel_of}`);
      checkRange(local.bytes, filters.floats, 8 * rows, `the filters of ${L.kernel_of}`);
      data.set(local.bytes.subarray(filters.start, filters.start + count), p.kernel.start);
      data.set(local.bytes.subarray(filters.floats, filters.floats + 8 * rows), p.kernel.floats);
      meta.kernel = {start: p.kernel.start, floats: p.kernel.floats, dims: [...filters.dims]};
    }
    return meta;
  });
  picture(r.x, [C0, H0, W0], data, inputAt);
  const outputShape = snap.net.outputShape;
  const probs = outputShape && outputShape.length === 1 ? softmax(r.logits) : null;
  const meta = {layers, input: {start: inputAt, shape: [H0, W0, 3]}, ...words(local, r, probs)};
  if ("token" in state) meta.token = state.token;
  return {data, meta};
}

// ------------------------------------------------------------------ the inspector

const grid = (values, at, rows, cols) => Array.from({length: rows},
  (_, i) => Array.from(values.subarray(at + i * cols, at + (i + 1) * cols)));

/**
 * How `layer`'s value at (channel, row, col) was made, for one state: the dict
 * explorer_inspect.inspection(model, data, x, layer, channel, (row, col)) gives (ok,
 * value, bias, sum, total, channels, ranked, shown, origin, stride, dilation, inside,
 * input_is_image; or ok false and a message). `layer`: a name, or an index into the layers.
 */
export function inspect(local, state, layer, channel, row, col) {
  if (typeof layer === "number" && Number.isInteger(layer) && local.layers[layer]) {
    layer = local.layers[layer].name;
  }
  const base = {layer, channel, row, col};
  const kernelOf = Object.hasOwn(local.kernelOf, layer) ? local.kernelOf[layer] : null;
  if (kernelOf !== layer) {
    const how = kernelOf ? `it comes from ${pyRepr(kernelOf)}: choose ${kernelOf} to take its ` +
      "values apart" : "no convolution made it";
    return {...base, ok: false, message: `${layer} is not a convolution layer; ${how}.`};
  }
  const r = run(local, state);
  const snap = local.snapshots[r.snapshot];
  const k = snap.convAt[layer];
  if (k === undefined) {
    return {...base, ok: false, message: `layer ${pyRepr(layer)} is not a convolution the ` +
      "browser runs"};
  }
  const step = snap.net.steps[k];
  const [OC, OH, OW] = step.shape;
  if (typeof channel !== "number" || !Number.isInteger(channel) || channel < 0 || channel >= OC) {
    return {...base, ok: false, message: `channel must be an integer in 0..${OC - 1} ` +
      `(${layer} has ${OC} output channels), got ${pyRepr(channel)}.`};
  }
  const input = runSteps(snap.net, r.x, k);
  const [, H, W] = input.shape;
  const output = r.maps[layer] ?? runSteps(snap.net, r.x, k + 1);
  const intLike = (v) => typeof v === "number" && Number.isInteger(v);
  if (!intLike(row) || !intLike(col)) {
    return {...base, ok: false, message: `position must be (row, col), two integers, got ` +
      `${pyRepr([row, col])}; ${layer}'s maps are ${OH}x${OW}, e.g. position=` +
      `(${Math.floor(OH / 2)}, ${Math.floor(OW / 2)}).`};
  }
  if (!(row >= 0 && row < OH && col >= 0 && col < OW)) {
    return {...base, ok: false, message: `position (${row}, ${col}) is outside ${layer}'s ` +
      `${OH}x${OW} maps: row must be in 0..${OH - 1} and col in 0..${OW - 1}.`};
  }
  const {weight, bias} = step.tensors;
  const [, ICg, KH, KW] = weight.shape;
  const [sh, sw] = step.stride, [dh, dw] = step.dilation, [top, , left] = step.padding;
  const first = Math.floor(channel / (OC / step.groups)) * ICg;
  const taps = KH * KW;
  const patch = new Float32Array(ICg * taps), products = new Float32Array(ICg * taps);
  const kernel = weight.data.subarray(channel * ICg * taps, (channel + 1) * ICg * taps);
  const origin = [row * sh - top, col * sw - left];
  const inside = Array.from({length: KH}, (_, i) => Array.from({length: KW}, (_, j) => {
    const y = origin[0] + i * dh, x = origin[1] + j * dw;
    return y >= 0 && y < H && x >= 0 && x < W;
  }));
  const perChannel = new Float32Array(ICg);
  let total = 0;
  for (let ci = 0; ci < ICg; ci++) {
    const plane = (first + ci) * H * W;
    let sum = 0;
    for (let i = 0; i < KH; i++) {
      for (let j = 0; j < KW; j++) {
        const t = ci * taps + i * KW + j;
        const y = origin[0] + i * dh, x = origin[1] + j * dw;
        patch[t] = inside[i][j] ? input.data[plane + y * W + x] : 0;
        products[t] = patch[t] * kernel[t];
        sum += products[t];
      }
    }
    perChannel[ci] = sum;
    total += sum;
  }
  const ranked = Array.from(perChannel, (v, ci) => [first + ci, v])
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]) || a[0] - b[0]);
  const shown = ranked.slice(0, MAX_CHANNELS_SHOWN).map(([c, contribution]) => {
    const at = (c - first) * taps;
    return {channel: c, sum: contribution, patch: grid(patch, at, KH, KW),
      kernel: grid(kernel, at, KH, KW), products: grid(products, at, KH, KW)};
  });
  const b = bias ? bias.data[channel] : 0;
  return {...base, ok: true, value: output.data[(channel * OH + row) * OW + col], bias: b,
    sum: total, total: total + b, channels: ICg, ranked, shown, origin, stride: [sh, sw],
    dilation: [dh, dw], inside, input_is_image: snap.firstConv === layer};
}
