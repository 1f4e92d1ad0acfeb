// A small network's forward pass in the browser: decode the payload Python sends
// (featviz/netspec_run.py, NetSpec.to_payload / to_json) and run it on one input.
//
//   const net = decode(payload);                  // once per model
//   const {logits, maps} = forward(net, pixels);  // pixels: Float32Array (C, H, W)
//   maps.conv1 -> {shape: [16, 24, 24], data: Float32Array}
//
// Python is the reference: tests/js/forward.test.mjs holds every map to PyTorch's
// (max abs diff <= 1e-4). Plain loops, no dependencies, no Node or DOM API.

import { bytesFrom } from "./codec.js";

export const FORMAT = "featviz-netspec";
export const VERSION = 1;

const product = (shape) => shape.reduce((a, b) => a * b, 1);

// ------------------------------------------------------------------ decoding

// Bytes from what a payload's "weights" may be: an ArrayBuffer, a DataView or typed
// array (anywidget hands binary buffers over as DataView), or a base64 string (a static
// HTML page).
const asBytes = (weights) => bytesFrom(weights, "payload.weights");

// The weights as float32 values: a fresh, aligned copy read as little-endian.
function asFloats(bytes, count) {
  if (bytes.byteLength !== 4 * count) {
    throw new Error(`payload.weights holds ${bytes.byteLength} bytes, but n_values ` +
      `${count} float32 values need ${4 * count}`);
  }
  const values = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count; i++) values[i] = view.getFloat32(4 * i, true);
  return values;
}

function decodeStep(entry, values, index) {
  const label = `step ${index} (${entry.name ?? entry.kind})`;
  if (!(entry.kind in OPS)) {
    throw new Error(`${label}: unknown kind ${JSON.stringify(entry.kind)}; this forward.js ` +
      `runs ${Object.keys(OPS).join(", ")}`);
  }
  const step = {...entry, tensors: {}};
  for (const [key, ref] of Object.entries(entry.tensors ?? {})) {
    const size = product(ref.shape);
    if (ref.offset < 0 || ref.offset + size > values.length) {
      throw new Error(`${label}: tensor ${key} (offset ${ref.offset}, ${size} values) lies ` +
        `outside the ${values.length} weights`);
    }
    step.tensors[key] = {shape: ref.shape, data: values.subarray(ref.offset, ref.offset + size)};
  }
  return step;
}

// A payload (an object, or its JSON text) -> a network forward() runs.
export function decode(payload) {
  const p = typeof payload === "string" ? JSON.parse(payload) : payload;
  if (p === null || p.format !== FORMAT || p.version !== VERSION) {
    throw new Error(`not a ${FORMAT} payload version ${VERSION}: format=` +
      `${JSON.stringify(p?.format)}, version=${JSON.stringify(p?.version)}`);
  }
  const values = asFloats(asBytes(p.weights), p.n_values);
  const steps = p.steps.map((entry, i) => decodeStep(entry, values, i));
  return {inputShape: p.input_shape, outputShape: p.output_shape, steps};
}

// ------------------------------------------------------------------ the steps
// Each op takes (step, x: Float32Array, inShape) and returns a new Float32Array
// of product(step.shape) values; none writes into its input.

// The output positions o in [0, outSize) whose input index o * stride + offset is
// inside [0, size): a kernel tap skips the zero padding without a test per pixel.
function validRange(offset, stride, size, outSize) {
  const first = Math.max(0, Math.ceil(-offset / stride));
  const last = Math.min(outSize, Math.floor((size - 1 - offset) / stride) + 1);
  return [first, Math.max(first, last)];
}

function conv2d(step, x, [, H, W]) {
  const [OC, OH, OW] = step.shape;
  const {weight, bias} = step.tensors;
  const [, ICg, KH, KW] = weight.shape;
  const [sy, sx] = step.stride, [dy, dx] = step.dilation, [top, , left] = step.padding;
  const OCg = OC / step.groups;
  const out = new Float32Array(OC * OH * OW);
  const w = weight.data;
  for (let oc = 0; oc < OC; oc++) {
    const plane = out.subarray(oc * OH * OW, (oc + 1) * OH * OW);
    plane.fill(bias ? bias.data[oc] : 0);
    const firstIn = Math.floor(oc / OCg) * ICg;   // this group's first input channel
    for (let icg = 0; icg < ICg; icg++) {
      const inPlane = (firstIn + icg) * H * W;
      for (let ky = 0; ky < KH; ky++) {
        const rowOffset = ky * dy - top;          // input row = oy * sy + rowOffset
        const [oy0, oy1] = validRange(rowOffset, sy, H, OH);
        for (let kx = 0; kx < KW; kx++) {
          const colOffset = kx * dx - left;       // input column = ox * sx + colOffset
          const [ox0, ox1] = validRange(colOffset, sx, W, OW);
          const tap = w[((oc * ICg + icg) * KH + ky) * KW + kx];
          for (let oy = oy0; oy < oy1; oy++) {
            const inRow = inPlane + (oy * sy + rowOffset) * W + colOffset;
            const outRow = oy * OW;
            for (let ox = ox0; ox < ox1; ox++) plane[outRow + ox] += tap * x[inRow + ox * sx];
          }
        }
      }
    }
  }
  return out;
}

function linear(step, x) {
  const {weight, bias} = step.tensors;
  const [OUT, IN] = weight.shape;
  const w = weight.data;
  const out = new Float32Array(OUT);
  for (let o = 0; o < OUT; o++) {
    let sum = bias ? bias.data[o] : 0;
    const row = o * IN;
    for (let i = 0; i < IN; i++) sum += w[row + i] * x[i];
    out[o] = sum;
  }
  return out;
}

function relu(step, x) {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] < 0 ? 0 : x[i];  // NaN stays NaN
  return out;
}

// Padding counts as -infinity: a window sees only the input it covers.
function maxpool2d(step, x, [, H, W]) {
  const [C, OH, OW] = step.shape;
  const [kh, kw] = step.kernel, [sy, sx] = step.stride;
  const [py, px] = step.padding, [dy, dx] = step.dilation;
  const out = new Float32Array(C * OH * OW);
  for (let c = 0; c < C; c++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        let best = -Infinity;
        for (let i = 0; i < kh; i++) {
          const y = oy * sy - py + i * dy;
          if (y < 0 || y >= H) continue;
          for (let j = 0; j < kw; j++) {
            const xx = ox * sx - px + j * dx;
            if (xx < 0 || xx >= W) continue;
            const v = x[(c * H + y) * W + xx];
            if (v > best || Number.isNaN(v)) best = v;  // NaN propagates, as in PyTorch
          }
        }
        out[(c * OH + oy) * OW + ox] = best;
      }
    }
  }
  return out;
}

// The window [start, end) along one axis and PyTorch's count for it: with
// count_include_pad the padding counts, the overhang of ceil mode never does.
function avgWindow(o, stride, pad, kernel, size, includePad) {
  const start = o * stride - pad;
  const end = Math.min(start + kernel, size + pad);
  const lo = Math.max(start, 0), hi = Math.min(end, size);
  return [lo, hi, includePad ? end - start : hi - lo];
}

function avgpool2d(step, x, [, H, W]) {
  const [C, OH, OW] = step.shape;
  const [kh, kw] = step.kernel, [sy, sx] = step.stride, [py, px] = step.padding;
  const include = step.count_include_pad, override = step.divisor_override;
  const out = new Float32Array(C * OH * OW);
  for (let oy = 0; oy < OH; oy++) {
    const [y0, y1, ny] = avgWindow(oy, sy, py, kh, H, include);
    for (let ox = 0; ox < OW; ox++) {
      const [x0, x1, nx] = avgWindow(ox, sx, px, kw, W, include);
      const divisor = override || ny * nx;
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (let y = y0; y < y1; y++) {
          for (let xx = x0; xx < x1; xx++) sum += x[(c * H + y) * W + xx];
        }
        out[(c * OH + oy) * OW + ox] = sum / divisor;
      }
    }
  }
  return out;
}

// Per channel (the first dimension): x * scale + shift.
function affine(step, x) {
  const {scale, shift} = step.tensors;
  const C = step.shape[0], inner = x.length / C;
  const out = new Float32Array(x.length);
  for (let c = 0; c < C; c++) {
    const a = scale.data[c], b = shift.data[c];
    for (let i = c * inner; i < (c + 1) * inner; i++) out[i] = x[i] * a + b;
  }
  return out;
}

// The values do not change, only the shape: the same array serves (no op writes in place).
const same = (step, x) => x;

const OPS = {conv2d, linear, relu, maxpool2d, avgpool2d, affine, reshape: same, identity: same};

// ------------------------------------------------------------------ running

// Run `net` (from decode) on one input, a Float32Array laid out (C, H, W):
// {logits: Float32Array, maps: {name: {shape, data}}} with every named step's output.
export function forward(net, input) {
  const expected = product(net.inputShape);
  if (!input || input.length !== expected) {
    throw new Error(`forward: the input has ${input?.length} values; the network takes ` +
      `${net.inputShape.join(" x ")} = ${expected}`);
  }
  let x = input instanceof Float32Array ? input : Float32Array.from(input);
  let shape = net.inputShape;
  const maps = {};
  for (const step of net.steps) {
    x = OPS[step.kind](step, x, shape);
    shape = step.shape;
    if (step.name !== null && step.name !== undefined) maps[step.name] = {shape, data: x};
  }
  return {logits: x, maps};
}

// Probabilities from logits, computed stably (the largest logit subtracted first).
export function softmax(logits) {
  let top = -Infinity;
  for (const v of logits) top = Math.max(top, v);
  const out = new Float32Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += (out[i] = Math.exp(logits[i] - top));
  for (let i = 0; i < out.length; i++) out[i] /= total;
  return out;
}

// The index of the largest value (the first, on a tie), -1 for an empty array.
export function argmax(values) {
  let best = -1;
  for (let i = 0; i < values.length; i++) if (best < 0 || values[i] > values[best]) best = i;
  return best;
}

// How many multiply-adds one forward pass of `net` does (convolutions and linear layers).
export function multiplyAdds(net) {
  let total = 0;
  for (const step of net.steps) {
    const w = step.tensors.weight;
    if (step.kind === "conv2d") total += product(step.shape) * product(w.shape.slice(1));
    if (step.kind === "linear") total += product(w.shape);
  }
  return total;
}
