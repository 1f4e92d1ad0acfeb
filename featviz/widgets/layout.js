// Where the explorer puts its maps, and which map or pixel a point on the canvas hits.
// Pure functions (no DOM): explorer.js draws with them and Node tests them
// (tests/js/layout.test.mjs).

// The grid of a layer's C maps of h x w in a picture `width` CSS pixels wide: tile
// size, gap, rows and columns (`grid`, from featviz._style.grid_shape).
export function gridLayout([C, h, w], [rows, cols], width = 780) {
  const availW = width - 16 - 80, availH = 440;
  const gap = C > 64 ? 2 : 6;
  let tw = Math.floor(Math.min((availW - gap * (cols - 1)) / cols,
                               ((availH - gap * (rows - 1)) / rows) * w / h));
  tw = Math.max(tw, 2);
  const th = Math.max(2, Math.round(tw * h / w));
  return { C, h, w, rows, cols, tw, th, gap };
}

// What the point (x, y) hits: {kind: "grid", index} for a tile of the grid drawn at
// (hit.x0, hit.y0), {kind: "single", row, col} for a pixel of the one map drawn
// hit.mw x hit.mh, null for a gap, a slot past the last map, or outside.
export function cellAt(hit, x, y) {
  if (!hit) return null;
  if (hit.kind === "grid") {
    const dx = x - hit.x0, dy = y - hit.y0;
    const col = Math.floor(dx / (hit.tw + hit.gap)), row = Math.floor(dy / (hit.th + hit.gap));
    if (col < 0 || col >= hit.cols || row < 0) return null;
    if (dx - col * (hit.tw + hit.gap) >= hit.tw || dy - row * (hit.th + hit.gap) >= hit.th) return null;
    const i = row * hit.cols + col;
    return i < hit.C ? { kind: "grid", index: i } : null;
  }
  const col = Math.floor((x - hit.x0) / (hit.mw / hit.w)), row = Math.floor((y - hit.y0) / (hit.mh / hit.h));
  if (col < 0 || col >= hit.w || row < 0 || row >= hit.h) return null;
  return { kind: "single", row, col };
}
