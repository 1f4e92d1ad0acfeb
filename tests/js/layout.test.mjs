// The explorer's grid layout and hit testing (featviz/widgets/layout.js): every tile's
// centre hits its own map, gaps and empty slots hit nothing, every pixel of the one-map
// view hits its own row and column.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gridLayout, cellAt } from "../../featviz/widgets/layout.js";
import { gridShape } from "../../featviz/widgets/style.js";

const LAYERS = [[16, 24, 24], [16, 12, 12], [32, 8, 8], [32, 4, 4], [64, 56, 56], [512, 7, 7], [6, 10, 30]];

test("the grid fits the picture and each tile's centre hits its map", () => {
  for (const shape of LAYERS) {
    const g = gridLayout(shape, gridShape(shape[0]));
    const hit = { kind: "grid", x0: 10, y0: 60, ...g };
    assert.ok(g.cols * (g.tw + g.gap) <= 780 - 16 - 80 + g.gap, `too wide: ${shape}`);
    assert.ok(g.tw >= 2 && g.th >= 2);
    for (let i = 0; i < shape[0]; i++) {
      const x = hit.x0 + (i % g.cols) * (g.tw + g.gap) + g.tw / 2;
      const y = hit.y0 + Math.floor(i / g.cols) * (g.th + g.gap) + g.th / 2;
      assert.deepEqual(cellAt(hit, x, y), { kind: "grid", index: i }, `${shape} tile ${i}`);
    }
  }
});

test("gaps, empty slots and outside hit nothing", () => {
  const g = gridLayout([6, 10, 30], gridShape(6, 4));   // 2 rows of 4: two empty slots
  const hit = { kind: "grid", x0: 10, y0: 60, ...g };
  assert.equal(cellAt(hit, hit.x0 + g.tw + g.gap / 2, hit.y0 + 1), null, "the gap between tiles");
  assert.equal(cellAt(hit, hit.x0 + 3 * (g.tw + g.gap) + 1, hit.y0 + g.th + g.gap + 1), null, "slot 7 is empty");
  assert.equal(cellAt(hit, hit.x0 - 1, hit.y0 + 1), null);
  assert.equal(cellAt(null, 0, 0), null);
});

test("the one-map view hits each pixel's row and column", () => {
  const hit = { kind: "single", x0: 190, y0: 92, mw: 300, mh: 300, h: 8, w: 8 };
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      const x = hit.x0 + (c + 0.5) * hit.mw / hit.w, y = hit.y0 + (r + 0.5) * hit.mh / hit.h;
      assert.deepEqual(cellAt(hit, x, y), { kind: "single", row: r, col: c });
    }
  }
  assert.equal(cellAt(hit, hit.x0 + hit.mw + 1, hit.y0 + 1), null);
});
