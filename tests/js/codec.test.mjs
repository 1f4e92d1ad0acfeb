// featviz/widgets/codec.js reads the payloads Python wrote (make_codec_fixtures.py, in the
// folder named by FEATVIZ_JS_CODEC_FIXTURES) to Python's own values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bytesOf, explorerLayers, dequantize, mapValue } from "../../featviz/widgets/codec.js";

const folder = process.env.FEATVIZ_JS_CODEC_FIXTURES;
const table = folder ? JSON.parse(readFileSync(join(folder, "codec.json"), "utf8")) : null;
// float32 roundings differ by an ulp at most: compare relative to the size of the value
const worst = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / Math.max(1, Math.abs(b[i]))), 0);

test("the explorer's payload decodes to Python's values", { todo: !table }, () => {
  for (const c of table.explorer) {
    const data = bytesOf(readFileSync(join(folder, c.file)));
    const layers = explorerLayers(c.meta, data);
    assert.deepEqual(layers.map((L) => L.name), Object.keys(c.expected));
    for (const L of layers) {
      const got = dequantize(data, L.start, L.offset, L.scale, L.shape);
      assert.ok(worst(Array.from(got), c.expected[L.name]) <= 1e-6, `${c.file} ${L.name}`);
      assert.equal(Math.fround(mapValue(data, L.start, L.offset, L.scale, L.shape, 1, 5)), got[L.shape[1] * L.shape[2] + 5]);
    }
  }
});

test("the sketchpad's maps decode to Python's dequantize", { todo: !table }, () => {
  const s = table.sketchpad;
  const data = bytesOf(readFileSync(join(folder, s.file)));
  const got = dequantize(data, 0, s.meta.offset, s.meta.scale, s.meta.shape);
  assert.ok(worst(Array.from(got), s.expected) <= 1e-6);
});

test("bytes arrive whole from any binary form", () => {
  const raw = new Uint8Array([1, 2, 3, 4]);
  assert.deepEqual(Array.from(bytesOf(new DataView(raw.buffer, 1, 2))), [2, 3]);
  assert.deepEqual(Array.from(bytesOf(raw.buffer)), [1, 2, 3, 4]);
  assert.equal(bytesOf(null).length, 0);
});
