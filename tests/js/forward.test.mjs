// The browser engine (featviz/widgets/forward.js) held to PyTorch's answer.
//
//   node --test tests/js/                       the unit tests; the parity tests skip
//   FEATVIZ_JS_FIXTURES=DIR node --test tests/js/  after make_fixtures.py DIR: everything
//
// tests/test_js.py does both steps in a temporary folder. node:test and
// node:assert only: no npm package.
import {describe, test} from "node:test";
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {join} from "node:path";

import {argmax, decode, forward, multiplyAdds, softmax} from "../../featviz/widgets/forward.js";

const FIXTURES = process.env.FEATVIZ_JS_FIXTURES;
const TOLERANCE = 1e-4;  // max abs diff, on the logits and on every named map

const product = (shape) => shape.reduce((a, b) => a * b, 1);

// A little-endian float32 file as a Float32Array (copied, so aligned).
function readFloats(path) {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

function maxAbsDiff(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = d;  // NaN makes it NaN: never silently fine
  }
  return worst;
}

// ------------------------------------------------------------------ parity with PyTorch

// Run every input of a fixture case; the worst difference per map, and argmax mismatches.
function compareCase(net, info, inputs, expected) {
  const inSize = product(info.input_shape);
  const sizes = [product(info.output_shape), ...info.maps.map((m) => product(m.shape))];
  const perInput = sizes.reduce((a, b) => a + b, 0);
  const worst = {logits: 0}, wrongClass = [];
  for (let k = 0; k < info.count; k++) {
    const {logits, maps} = forward(net, inputs.subarray(k * inSize, (k + 1) * inSize));
    let at = k * perInput;
    const want = expected.subarray(at, at + sizes[0]);
    worst.logits = Math.max(worst.logits, maxAbsDiff(logits, want));
    if (argmax(logits) !== argmax(want)) wrongClass.push(k);
    at += sizes[0];
    info.maps.forEach((m, i) => {
      assert.ok(m.name in maps, `${info.name}: no map named ${m.name} (got ${Object.keys(maps)})`);
      assert.deepEqual(maps[m.name].shape, m.shape, `${info.name}: shape of ${m.name}`);
      const d = maxAbsDiff(maps[m.name].data, expected.subarray(at, at + sizes[i + 1]));
      worst[m.name] = Math.max(worst[m.name] ?? 0, d);
      at += sizes[i + 1];
    });
  }
  return {worst, wrongClass};
}

describe("forward.js equals PyTorch", {skip: !FIXTURES && "FEATVIZ_JS_FIXTURES is not set: " +
    "run tests/js/make_fixtures.py DIR first (tests/test_js.py does)"}, () => {
  const manifest = FIXTURES ? JSON.parse(readFileSync(join(FIXTURES, "manifest.json"), "utf8"))
    : {cases: []};

  test("the fixtures hold the pretrained model, a snapshot and the synthetic nets", () => {
    const names = manifest.cases.map((c) => c.name);
    for (const name of ["pretrained", "snapshot", "norms", "avgpools", "dilation_groups"]) {
      assert.ok(names.includes(name), `no case ${name} in ${names}`);
    }
    const digits = manifest.cases.find((c) => c.name === "pretrained");
    assert.equal(digits.count, 100);
  });

  for (const info of manifest.cases) {
    test(`${info.name}: logits and every named map within ${TOLERANCE}`, () => {
      const net = decode(readFileSync(join(FIXTURES, `${info.name}.payload.json`), "utf8"));
      const inputs = readFloats(join(FIXTURES, `${info.name}.inputs.f32`));
      const expected = readFloats(join(FIXTURES, `${info.name}.expected.f32`));
      const {worst, wrongClass} = compareCase(net, info, inputs, expected);
      const over = Object.entries(worst).filter(([, d]) => !(d <= TOLERANCE));
      assert.deepEqual(over, [], `${info.name}: max abs diff over ${TOLERANCE}: ` +
        over.map(([n, d]) => `${n} ${d.toExponential(2)}`).join(", "));
      assert.deepEqual(wrongClass, [], `${info.name}: argmax differs for inputs ${wrongClass}`);
    });
  }

  test("the raw weights, as an anywidget DataView, decode to the same network", () => {
    const text = readFileSync(join(FIXTURES, "pretrained.payload.json"), "utf8");
    const bytes = readFileSync(join(FIXTURES, "pretrained.weights.bin"));
    const shifted = new Uint8Array(bytes.length + 1);  // an odd byte offset: unaligned floats
    shifted.set(bytes, 1);
    const payload = {...JSON.parse(text), weights: new DataView(shifted.buffer, 1)};
    const fromBytes = decode(payload), fromText = decode(text);
    const input = readFloats(join(FIXTURES, "pretrained.inputs.f32")).subarray(0, 784);
    assert.deepEqual(forward(fromBytes, input).logits, forward(fromText, input).logits);
    assert.equal(multiplyAdds(fromText), 1_121_960);  // conv1 230,400, conv2 819,200, fc 72,360
  });
});

// ------------------------------------------------------------------ hand-checked units

// A payload built here: steps with Float32Array tensors packed into base64 weights.
function payloadOf(inputShape, steps) {
  const chunks = [];
  let offset = 0;
  const entries = steps.map(({tensors = {}, ...rest}) => {
    const refs = {};
    for (const [key, {shape, values}] of Object.entries(tensors)) {
      refs[key] = {offset, shape};
      chunks.push(Float32Array.from(values));
      offset += values.length;
    }
    return {...rest, tensors: refs};
  });
  const all = new Float32Array(offset);
  let at = 0;
  for (const c of chunks) { all.set(c, at); at += c.length; }
  return {format: "featviz-netspec", version: 1, input_shape: inputShape,
    output_shape: steps.at(-1).shape, n_values: offset, steps: entries,
    weights: Buffer.from(all.buffer).toString("base64")};
}

describe("forward.js by hand", () => {
  test("a padded, strided conv: each output is patch x kernel + bias", () => {
    // input 1 x 3 x 3 = 1..9, kernel 2 x 2 of ones, bias 0.5, padding 1, stride 2 -> 2 x 2
    const net = decode(payloadOf([1, 3, 3], [{name: "c", kind: "conv2d", shape: [1, 2, 2],
      stride: [2, 2], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1,
      tensors: {weight: {shape: [1, 1, 2, 2], values: [1, 1, 1, 1]},
        bias: {shape: [1], values: [0.5]}}}]));
    const {logits} = forward(net, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    assert.deepEqual(Array.from(logits), [1.5, 2 + 3 + 0.5, 4 + 7 + 0.5, 5 + 6 + 8 + 9 + 0.5]);
  });

  test("max pooling ignores padding and keeps NaN; average pooling divides as PyTorch", () => {
    // 2 x 2 input, 2 x 2 windows, stride 2, padding 1: each window meets one input value
    const pool = (kind, extra = {}) => decode(payloadOf([1, 2, 2], [{name: "p", kind,
      shape: [1, 2, 2], kernel: [2, 2], stride: [2, 2], padding: [1, 1], dilation: [1, 1],
      ceil_mode: false, divisor_override: null, ...extra}]));
    const x = Float32Array.from([-1, -2, NaN, -4]);
    assert.deepEqual(Array.from(forward(pool("maxpool2d"), x).logits), [-1, -2, NaN, -4]);
    const y = Float32Array.from([4, 8, 12, 16]);
    const counted = forward(pool("avgpool2d", {count_include_pad: true}), y).logits;
    assert.deepEqual(Array.from(counted), [1, 2, 3, 4]);   // each window: 1 value, 4 counted
    const uncounted = forward(pool("avgpool2d", {count_include_pad: false}), y).logits;
    assert.deepEqual(Array.from(uncounted), [4, 8, 12, 16]);
  });

  test("softmax is stable and sums to one; argmax takes the first of a tie", () => {
    const p = softmax(Float32Array.from([1000, 1001, 1000]));
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6);
    assert.ok(p[1] > p[0] && Math.abs(p[0] - p[2]) < 1e-9 && !p.some(Number.isNaN));
    assert.equal(argmax([3, 7, 7, 1]), 1);
    assert.equal(argmax([]), -1);
  });

  test("errors say what was given and what was expected", () => {
    const good = payloadOf([2], [{name: "r", kind: "relu", shape: [2]}]);
    assert.throws(() => decode({...good, format: "other"}), /not a featviz-netspec payload/);
    assert.throws(() => decode({...good, n_values: 3}), /0 bytes, but n_values 3/);
    assert.throws(() => decode({...good, steps: [{name: "s", kind: "gelu", shape: [2]}]}),
      /step 0 \(s\): unknown kind "gelu"/);
    assert.throws(() => forward(decode(good), new Float32Array(3)), /3 values; .* 2 = 2/);
  });
});
