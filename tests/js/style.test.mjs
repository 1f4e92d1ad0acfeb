// featviz/widgets/style.js against featviz/_style.py: the same tick labels, colour scales,
// limits and grids. The table comes from make_style_fixtures.py, in the folder named by
// FEATVIZ_JS_STYLE_FIXTURES (tests/test_js.py writes it and runs this suite).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fmt, colorScale, limits, gridShape } from "../../featviz/widgets/style.js";

const folder = process.env.FEATVIZ_JS_STYLE_FIXTURES;
const num = (v) => (v === "nan" ? NaN : v === "inf" ? Infinity : v === "-inf" ? -Infinity : v);
const table = folder ? JSON.parse(readFileSync(join(folder, "style.json"), "utf8")) : null;

test("fmt writes what Python's fmt writes, for a tick label", { todo: !table }, () => {
  const wrong = [];
  for (const [v, digits, want] of table.fmt) {
    const got = fmt(num(v), digits);
    if (got !== want) wrong.push(`fmt(${v}, ${digits}): JS ${got}, Python ${want}`);
  }
  assert.deepEqual(wrong, []);
});

test("a value that rounds up to 100 reads 100, not 1e+02", () => {
  assert.equal(fmt(99.5), "100");
  assert.equal(fmt(-99.5), "-100");
  assert.equal(fmt(0.01234), "0.012");
  assert.equal(fmt(-0), "0");
});

test("colorScale equals color_scale", { todo: !table }, () => {
  for (const [values, cmap, want] of table.color_scale) {
    assert.deepEqual(colorScale(values.map(num), cmap), want, JSON.stringify([values, cmap]));
  }
});

test("limits equals limits", { todo: !table }, () => {
  for (const [maps, scale, lo, hi] of table.limits) {
    assert.deepEqual(limits(maps.map((m) => m.map(num)), scale), [lo, hi], JSON.stringify([maps, scale]));
  }
});

test("gridShape equals grid_shape", { todo: !table }, () => {
  for (const [n, maxCols, want] of table.grid_shape) {
    assert.deepEqual(gridShape(n, maxCols), want, `grid_shape(${n}, ${maxCols})`);
  }
});
