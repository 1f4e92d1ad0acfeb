// The featviz explorer's picture, drawn in the browser.
//
// The kernel sends, once per image / training moment / perturbation, every
// layer's feature maps as uint8 with a per-map offset and scale (`payload` +
// `meta`). Everything the layer, filter, view and scale controls change is drawn
// here from those bytes, with no message to the kernel. Colours come from the
// same matplotlib colour maps as the static figures (`colormaps`, 256 RGB each).
//
// With the browser engine (trait `engine` = "browser") the kernel sent the network of
// every training moment and the images once (`local_meta`, `local_data`), and every
// control is linked to this view in the page: a new image, moment or perturbation is
// computed here (explorer_local.js builds the same payload the kernel would), and so is
// the convolution inspector. Nothing then waits for the kernel; a static page
// (save_html) keeps every control.
//
// For tests and timing, the canvas carries data-draws (a counter),
// data-drawn (performance.now() at the end of the last draw), data-ms (its
// duration) and data-state (payload token|layer|filter|view|scale).

import { fmt } from "./style.js";
import { gridLayout, cellAt } from "./layout.js";
import { bytesOf, explorerLayers } from "./codec.js";
import { openBundle, payloadFor, inspect as inspectHere } from "./explorer_local.js";

const GREEN = "#2e7d32";
const DEAD = "#d9d9d9";
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
const WIDTH = 780;

// text for innerHTML: layer names and messages are the user's
function esc(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

const PERTURBATION = ["shift_x", "shift_y", "rotate", "scale", "erase", "noise"];

function num(v) {
  v = Number(v);
  if (v === 0) return "0";
  if (Math.abs(v) < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

function cmapIndex(t) {
  // matplotlib's lookup: t in [0, 1] -> one of 256 entries
  return Math.max(0, Math.min(255, Math.floor(t * 256)));
}

class Picture {
  constructor(model, el) {
    this.model = model;
    this.root = document.createElement("div");
    this.root.className = "fv-explorer-view";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "fv-canvas featviz-explorer-canvas";
    this.canvas.dataset.draws = "0";
    this.tip = document.createElement("div");
    this.tip.className = "fv-tip";
    this.insp = document.createElement("div");
    this.insp.className = "fv-insp";
    this.root.append(this.canvas, this.tip, this.insp);
    el.appendChild(this.root);
    this.sheets = new Map();
    this.hit = null;
    this.queued = false;
    this.shownChannel = null;
    this.filterModel = null;
    this.local = null;
    this.localToken = 0;
    this.localInspection = null;
    this.saved = null;   // a saved page of a model the browser cannot run: maps per image
    if (model.get("engine") === "precomputed") {
      this.saved = { ...model.get("local_meta"), data: bytesOf(model.get("local_data")) };
    } else if (model.get("engine") === "browser") {
      try {
        this.local = openBundle(model.get("local_meta"), bytesOf(model.get("local_data")));
      } catch (e) {
        this.problem = `The network could not run in this page: ${e.message}`;
      }
    }
    this.engine = document.createElement("div");
    this.engine.className = "fv-engine";
    this.engine.textContent = this.local
      ? "The network runs in this page: every control answers at once, with no kernel round trip."
      : this.saved ? `Maps computed in the notebook for ${this.saved.payloads.length} images.`
        : (this.problem || model.get("engine_note") || "");
    this.root.dataset.engine = this.local ? "browser" : this.saved ? "precomputed" : "kernel";
    this.root.appendChild(this.engine);
    this.unpack();
    this.fromKernel();
    this.canvas.addEventListener("click", (e) => this.onClick(e));
    this.canvas.addEventListener("mousemove", (e) => this.onHover(e));
    this.canvas.addEventListener("mouseleave", () => { this.tip.style.display = "none"; });
  }

  async findFilterControl() {
    const ref = this.model.get("filter_control");
    const manager = this.model.widget_manager;
    if (!ref || !manager) return;
    try {
      this.filterModel = await manager.get_model(String(ref).replace(/^IPY_MODEL_/, ""));
    } catch (e) {
      this.filterModel = null;
    }
  }

  // the label chooser follows the image, and choosing a label jumps to the next image
  // with it (the browser engine; ControlSync does the same in the kernel otherwise)
  labels() {
    return (this.local || this.saved || {}).labels || null;
  }

  present() {
    const labels = this.labels();
    return labels ? [...new Set(labels)].sort((a, b) => a - b) : [];
  }

  labelFollows() {
    const labels = this.labels();
    if (!labels) return;
    const k = this.present().indexOf(labels[this.model.get("image_index")]);
    if (k >= 0 && k !== this.model.get("digit_index")) {
      this.model.set("digit_index", k);
      this.model.save_changes();
    }
  }

  onDigit() {
    const labels = this.labels();
    if (!labels) return;
    const digit = this.present()[this.model.get("digit_index")];
    const start = this.model.get("image_index"), n = labels.length;
    if (labels[start] === digit) return;
    for (let step = 1; step <= n; step++) {
      const i = (start + step) % n;
      if (labels[i] === digit) {
        this.model.set("image_index", i);
        this.model.save_changes();
        return;
      }
    }
  }

  // the state the page computes from (the browser engine)
  localState() {
    const m = this.model, perturbation = {};
    for (const k of PERTURBATION) perturbation[k] = m.get(k);
    return { image: m.get("image_index"), snapshot: m.get("snapshot_index"), perturbation };
  }

  inspection() {
    return (this.local ? this.localInspection : this.model.get("inspection")) || {};
  }

  unpack() {
    if (this.saved) {
      const p = this.saved.payloads;
      const m = p[Math.max(0, Math.min(p.length - 1, this.model.get("image_index")))];
      this.meta = m;
      this.data = this.saved.data.subarray(m.at, m.at + m.size);
    } else if (this.local) {
      const built = payloadFor(this.local, { ...this.localState(), token: ++this.localToken });
      this.meta = built.meta;
      this.data = built.data;
      const old = this.localInspection;
      if (old && old.ok) this.inspectAt(old.layer, old.channel, old.row, old.col);  // follows the input
    } else {
      this.meta = this.model.get("meta") || {};
      this.data = bytesOf(this.model.get("payload"));
    }
    // per-map numbers travel as float32 in the payload: offset, scale, own limits
    this.layers = explorerLayers(this.meta, this.data);
    const names = this.model.get("cmap_names") || [];
    const all = bytesOf(this.model.get("colormaps"));
    this.cmaps = {};
    names.forEach((n, i) => { this.cmaps[n] = all.subarray(i * 768, (i + 1) * 768); });
    this.sheets.clear();
    if (this.tip) this.tip.style.display = "none";  // its value was of the old maps
    this.prepare();
  }

  // colour every layer for both scales while the page is idle, so that a layer or
  // scale change only has to copy pixels
  prepare() {
    const token = this.meta.token;
    const idle = window.requestIdleCallback || ((f) => setTimeout(f, 0));
    idle(() => {
      if (this.meta.token !== token) return;
      this.layers.forEach((L, i) => { this.sheet(i, L, 0); this.sheet(i, L, 1); });
    });
  }

  schedule() {
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(() => { this.queued = false; this.draw(); });
  }

  // the filter slider's range follows the layer here, so no kernel round trip is needed
  onLayer() {
    const L = this.layer();
    const fm = this.filterModel;
    if (L && fm) {
      const top = L.shape[0] - 1;
      if (fm.get("max") !== top) {
        fm.set({ max: top, value: Math.min(fm.get("value"), top) });
        fm.save_changes();
      }
    }
    this.schedule();
  }

  layer() {
    return this.layers[this.model.get("layer_index")] || null;
  }

  channel() {
    const L = this.layer();
    const c = this.model.get("channel");
    return L ? Math.max(0, Math.min(c, L.shape[0] - 1)) : c;
  }

  // every map of a layer, coloured for one scale, stacked in one offscreen canvas
  sheet(li, L, scaleMode) {
    const key = `${li}:${scaleMode}`;
    if (this.sheets.has(key)) return this.sheets.get(key);
    const [C, h, w] = L.shape;
    const cmap = this.cmaps[L.cmap] || this.cmaps.magma;
    const img = new ImageData(w, h * C);
    const px = img.data;
    const lut = new Uint8ClampedArray(256 * 3);
    const n = h * w;
    for (let c = 0; c < C; c++) {
      const off = L.offset[c], sc = L.scale[c];
      const lo = scaleMode === 0 ? L.shared[0] : L.per_map[0][c];
      const hi = scaleMode === 0 ? L.shared[1] : L.per_map[1][c];
      const span = hi - lo || 1;
      for (let q = 0; q < 256; q++) {
        const k = cmapIndex((off + sc * q - lo) / span) * 3;
        lut[q * 3] = cmap[k]; lut[q * 3 + 1] = cmap[k + 1]; lut[q * 3 + 2] = cmap[k + 2];
      }
      const src = L.start + c * n;
      for (let i = 0; i < n; i++) {
        const q = this.data[src + i] * 3, o = (c * n + i) * 4;
        px[o] = lut[q]; px[o + 1] = lut[q + 1]; px[o + 2] = lut[q + 2]; px[o + 3] = 255;
      }
    }
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h * C;
    canvas.getContext("2d").putImageData(img, 0, 0);
    this.sheets.set(key, canvas);
    return canvas;
  }

  stats(L, c) {
    const [, h, w] = L.shape;
    const n = h * w, src = L.start + c * n;
    let total = 0;
    for (let i = 0; i < n; i++) total += this.data[src + i];
    const off = L.offset[c], sc = L.scale[c];
    return { min: off, max: off + 255 * sc, mean: off + sc * total / n, dead: off === 0 && sc === 0 };
  }

  limits(L, c, scaleMode) {
    return scaleMode === 0 ? L.shared : [L.per_map[0][c], L.per_map[1][c]];
  }

  draw() {
    const t0 = performance.now();
    const m = this.meta;
    const L = this.layer();
    const view = this.model.get("view_index"), scaleMode = this.model.get("scale_index");
    const c = this.channel();
    const single = view === 1;
    const height = !L ? 60 : single ? 430 : this.gridHeight(L) + 92;
    const dpr = window.devicePixelRatio || 1;
    const cv = this.canvas;
    if (cv.width !== Math.round(WIDTH * dpr) || cv.height !== Math.round(height * dpr)) {
      cv.width = Math.round(WIDTH * dpr); cv.height = Math.round(height * dpr);
      cv.style.width = `${WIDTH}px`; cv.style.height = `${height}px`;
    }
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, WIDTH, height);
    ctx.imageSmoothingEnabled = false;
    if (!L) {
      ctx.fillStyle = "#555"; ctx.font = `14px ${FONT}`;
      ctx.fillText("waiting for the kernel to send the feature maps…", 10, 30);
    } else {
      const top = this.header(ctx, m, L, c, scaleMode, single);
      if (single) this.drawSingle(ctx, L, c, scaleMode, top);
      else this.drawGrid(ctx, L, c, scaleMode, top);
    }
    this.renderInspector();
    cv.dataset.state = `${m.token}|${this.model.get("layer_index")}|${c}|${view}|${scaleMode}`;
    cv.dataset.draws = String(Number(cv.dataset.draws) + 1);
    cv.dataset.drawn = String(performance.now());
    cv.dataset.ms = String(performance.now() - t0);  // how long this draw took
  }

  header(ctx, m, L, c, scaleMode, single) {
    let x = 8;
    ctx.textBaseline = "alphabetic";
    ctx.font = `600 15px ${FONT}`;
    ctx.fillStyle = "#111";
    if (m.prediction) {
      const p = m.prediction;
      const text = `predicted ${p.name} (${(100 * p.p).toFixed(1)}% sure)`;
      ctx.fillText(text, x, 20);
      x += ctx.measureText(text).width;
    }
    if (m.label !== undefined) {
      ctx.font = `15px ${FONT}`;
      const ok = m.correct;
      const text = `${m.prediction ? "  ·  " : ""}label ${m.label}${ok === true ? " ✔" : ok === false ? " ✘ wrong" : ""}`;
      ctx.fillStyle = ok === false ? "#b71c1c" : ok === true ? GREEN : "#111";
      ctx.fillText(text, x, 20);
    }
    ctx.font = `13px ${FONT}`;
    ctx.fillStyle = "#444";
    ctx.textAlign = "right";
    const right = [`image ${m.image}`];
    if (m.training) right.unshift(`training: ${m.training}`);
    ctx.fillText(right.join("  ·  "), WIDTH - 8, 20);
    ctx.textAlign = "left";
    const [C, h, w] = L.shape;
    const s = this.stats(L, c);
    let line = `${L.name}  ·  ${C} maps ${h}×${w}  ·  filter ${c}: min ${fmt(s.min)} · max ${fmt(s.max)} · mean ${fmt(s.mean)}`;
    line += scaleMode === 0 ? "  ·  shared colour scale" : "  ·  each map on its own scale";
    ctx.fillText(line, 8, 40);
    if (m.perturbed) {
      ctx.fillStyle = "#8a4b00";
      ctx.fillText(`input changed: ${m.perturbed}`, 8, 58);
    }
    if (s.dead) {
      ctx.fillStyle = "#555";
      ctx.textAlign = "right";
      ctx.fillText(`filter ${c} is zero everywhere (dead for this input)`, WIDTH - 8, 40);
      ctx.textAlign = "left";
    }
    return m.perturbed ? 70 : 52;
  }

  gridLayout(L) {
    return gridLayout(L.shape, L.grid, WIDTH);
  }

  gridHeight(L) {
    const g = this.gridLayout(L);
    return g.rows * (g.th + g.gap);
  }

  drawGrid(ctx, L, c, scaleMode, top) {
    const g = this.gridLayout(L);
    const sheet = this.sheet(this.model.get("layer_index"), L, scaleMode);
    const x0 = 10, y0 = top + 6;
    ctx.font = `10px ${FONT}`;
    for (let i = 0; i < g.C; i++) {
      const x = x0 + (i % g.cols) * (g.tw + g.gap), y = y0 + Math.floor(i / g.cols) * (g.th + g.gap);
      if (L.offset[i] === 0 && L.scale[i] === 0) {
        this.dead(ctx, x, y, g.tw, g.th);
      } else {
        ctx.drawImage(sheet, 0, i * g.h, g.w, g.h, x, y, g.tw, g.th);
      }
      if (g.tw >= 40) {
        ctx.fillStyle = "rgba(255,255,255,0.8)";
        ctx.fillRect(x, y, ctx.measureText(String(i)).width + 4, 12);
        ctx.fillStyle = "#222";
        ctx.fillText(String(i), x + 2, y + 10);
      }
    }
    const hx = x0 + (c % g.cols) * (g.tw + g.gap), hy = y0 + Math.floor(c / g.cols) * (g.th + g.gap);
    // the frame sits in the gap around the tile, so it shows on dark maps too
    ctx.strokeStyle = GREEN; ctx.lineWidth = Math.max(2, g.gap - 2);
    const pad = ctx.lineWidth / 2 + 0.5;
    ctx.strokeRect(hx - pad, hy - pad, g.tw + 2 * pad, g.th + 2 * pad);
    this.hit = { kind: "grid", x0, y0, ...g };
    const barX = x0 + g.cols * (g.tw + g.gap) + 14;
    const [lo, hi] = this.limits(L, c, scaleMode);
    const label = scaleMode === 0 ? "activation" : `filter ${c}'s scale`;
    this.colorbar(ctx, barX, y0, Math.max(60, g.rows * (g.th + g.gap) - g.gap), L.cmap, lo, hi, label);
  }

  dead(ctx, x, y, w, h) {
    ctx.fillStyle = DEAD;
    ctx.fillRect(x, y, w, h);
    ctx.save();
    ctx.beginPath(); ctx.rect(x, y, w, h); ctx.clip();
    ctx.strokeStyle = "#9e9e9e"; ctx.lineWidth = 1;
    for (let d = -h; d < w; d += 6) {
      ctx.beginPath(); ctx.moveTo(x + d, y + h); ctx.lineTo(x + d + h, y); ctx.stroke();
    }
    ctx.restore();
  }

  colorbar(ctx, x, y, h, name, lo, hi, label) {
    const cmap = this.cmaps[name] || this.cmaps.magma;
    for (let i = 0; i < h; i++) {
      const k = cmapIndex(1 - i / Math.max(1, h - 1)) * 3;
      ctx.fillStyle = `rgb(${cmap[k]},${cmap[k + 1]},${cmap[k + 2]})`;
      ctx.fillRect(x, y + i, 14, 1);
    }
    ctx.strokeStyle = "#888"; ctx.lineWidth = 1;
    ctx.strokeRect(x + 0.5, y + 0.5, 14, h - 1);
    ctx.fillStyle = "#222"; ctx.font = `11px ${FONT}`;
    ctx.textBaseline = "middle";
    [[hi, y], [(lo + hi) / 2, y + h / 2], [lo, y + h - 1]].forEach(([v, ty]) => {
      ctx.fillRect(x + 14, ty, 4, 1);
      ctx.fillText(fmt(v), x + 20, ty);
    });
    ctx.textBaseline = "alphabetic";
    ctx.save();
    ctx.translate(x + 62, y + h / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillStyle = "#555";
    ctx.fillText(label, 0, 0);
    ctx.restore();
  }

  drawInput(ctx, x, y, size) {
    const I = this.meta.input;
    const [h, w] = I.shape;
    const img = new ImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const s = I.start + i * 3;
      img.data[i * 4] = this.data[s]; img.data[i * 4 + 1] = this.data[s + 1];
      img.data[i * 4 + 2] = this.data[s + 2]; img.data[i * 4 + 3] = 255;
    }
    const off = document.createElement("canvas");
    off.width = w; off.height = h;
    off.getContext("2d").putImageData(img, 0, 0);
    const dh = Math.round(size * h / w);
    ctx.drawImage(off, x, y, size, dh);
    ctx.strokeStyle = "#888"; ctx.lineWidth = 1;
    ctx.strokeRect(x - 0.5, y - 0.5, size + 1, dh + 1);
    return { w, h, size, dh };
  }

  drawSingle(ctx, L, c, scaleMode, top) {
    const [, h, w] = L.shape;
    const y = top + 22;
    ctx.font = `13px ${FONT}`; ctx.fillStyle = "#222";
    ctx.fillText(this.meta.perturbed ? "input (changed)" : "input", 10, y - 6);
    const inp = this.drawInput(ctx, 10, y, 150);
    const mx = 190, size = 300;
    const mw = w >= h ? size : Math.round(size * w / h), mh = w >= h ? Math.round(size * h / w) : size;
    ctx.fillStyle = "#222";
    ctx.fillText(`${L.name} · filter ${c}`, mx, y - 6);
    if (L.offset[c] === 0 && L.scale[c] === 0) this.dead(ctx, mx, y, mw, mh);
    else ctx.drawImage(this.sheet(this.model.get("layer_index"), L, scaleMode), 0, c * h, w, h, mx, y, mw, mh);
    this.hit = { kind: "single", x0: mx, y0: y, mw, mh, h, w };
    this.canvas.dataset.map = JSON.stringify(this.hit);
    const [lo, hi] = this.limits(L, c, scaleMode);
    this.colorbar(ctx, mx + mw + 10, y, mh, L.cmap, lo, hi, "activation");
    const ins = this.inspection();
    if (ins.ok && ins.layer === L.name && ins.channel === c) {
      ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 2;
      ctx.strokeRect(mx + ins.col * mw / w, y + ins.row * mh / h, mw / w, mh / h);
      if (ins.input_is_image) {
        const kh = ins.inside.length, kw = ins.inside[0].length;
        const sy = inp.dh / inp.h, sx = inp.size / inp.w;
        ctx.strokeRect(10 + ins.origin[1] * sx, y + ins.origin[0] * sy,
                       ((kw - 1) * ins.dilation[1] + 1) * sx, ((kh - 1) * ins.dilation[0] + 1) * sy);
      }
    }
    this.drawKernel(ctx, L, c, mx + mw + 90, y);
    ctx.fillStyle = "#555"; ctx.font = `12px ${FONT}`;
    const hint = L.conv ? "click a position of the map: the inspector below shows how its value was made"
      : L.kernel_of ? `click a position: ${L.name} comes from ${L.kernel_of}, whose values the inspector takes apart`
        : "";
    ctx.fillText(hint, 10, y + Math.max(mh, inp.dh) + 22);
  }

  drawKernel(ctx, L, c, x, y) {
    const K = L.kernel;
    ctx.font = `13px ${FONT}`; ctx.fillStyle = "#222";
    if (!K) {
      if (L.kernel_of) ctx.fillText("filter not sent (too large)", x, y + 12);
      return;
    }
    const [, cin, kh, kw] = K.dims;
    ctx.fillText(`filter of ${L.kernel_of} (${cin} × ${kh}×${kw})`, x, y - 6);
    const cols = Math.ceil(Math.sqrt(cin)), rows = Math.ceil(cin / cols);
    const availW = WIDTH - x - 8, availH = 300;
    const gap = 3;
    const t = Math.max(1, Math.floor(Math.min((availW - gap * (cols - 1)) / (cols * kw),
                                              (availH - gap * (rows - 1)) / (rows * kh))));
    const off = K.offset[c], sc = K.scale[c], n = cin * kh * kw, src = K.start + c * n;
    let top = 0;
    for (let i = 0; i < n; i++) top = Math.max(top, Math.abs(off + sc * this.data[src + i]));
    top = top || 1;
    const cmap = this.cmaps.RdBu_r;
    for (let ch = 0; ch < cin; ch++) {
      const bx = x + (ch % cols) * (kw * t + gap), by = y + Math.floor(ch / cols) * (kh * t + gap);
      for (let r = 0; r < kh; r++) {
        for (let q = 0; q < kw; q++) {
          const v = off + sc * this.data[src + (ch * kh + r) * kw + q];
          const k = cmapIndex((v + top) / (2 * top)) * 3;
          ctx.fillStyle = `rgb(${cmap[k]},${cmap[k + 1]},${cmap[k + 2]})`;
          ctx.fillRect(bx + q * t, by + r * t, t, t);
        }
      }
    }
  }

  position(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  cellAt(e) {
    return cellAt(this.hit, ...this.position(e));
  }

  onHover(e) {
    const cell = this.cellAt(e);
    const L = this.layer();
    if (!cell || !L) { this.tip.style.display = "none"; return; }
    let text;
    if (cell.kind === "grid") {
      text = `filter ${cell.index} (click to choose)`;
    } else {
      const c = this.channel(), [, h, w] = L.shape;
      const v = L.offset[c] + L.scale[c] * this.data[L.start + (c * h + cell.row) * w + cell.col];
      text = `row ${cell.row}, column ${cell.col}: ${num(v)}`;
    }
    const [x, y] = this.position(e);
    this.tip.textContent = text;
    this.tip.style.display = "block";
    this.tip.style.left = `${x + 14}px`;
    this.tip.style.top = `${y + 10}px`;
  }

  onClick(e) {
    const cell = this.cellAt(e);
    if (!cell) return;
    if (cell.kind === "grid") {
      this.model.set("channel", cell.index);
      this.model.save_changes();
      return;
    }
    this.shownChannel = null;
    if (this.local) {   // taken apart here, at once
      this.inspectAt(this.layer().name, this.channel(), cell.row, cell.col);
      this.schedule();
      return;
    }
    this.pending = { layer: this.layer().name, channel: this.channel(), row: cell.row, col: cell.col };
    this.model.send({ type: "inspect", layer: this.model.get("layer_index"), channel: this.channel(),
                      row: cell.row, col: cell.col });
    this.renderInspector();
  }

  // a position inspected from Python (explorer.inspect(...)): the page takes it apart too
  fromKernel() {
    const ins = this.model.get("inspection") || {};
    if (this.local && ins.ok) this.inspectAt(ins.layer, ins.channel, ins.row, ins.col);
  }

  inspectAt(layer, channel, row, col) {
    this.localInspection = { ...inspectHere(this.local, this.localState(), layer, channel, row, col),
                             token: this.meta.token };
  }

  renderInspector() {
    const L = this.layer();
    const single = this.model.get("view_index") === 1;
    this.insp.style.display = single && L ? "block" : "none";
    if (!single || !L) return;
    const ins = this.inspection();
    const c = this.channel();
    const p = this.pending;
    const fresh = ins.layer === L.name && ins.channel === c;
    if (p && !(ins.layer === p.layer && ins.channel === p.channel && ins.row === p.row && ins.col === p.col)) {
      this.insp.innerHTML = `<div class="fv-insp-head">${esc(p.layer)} · filter ${p.channel} · row ${p.row}, column ${p.col}: computing…</div>`;
      return;
    }
    if (!fresh) {
      this.insp.innerHTML = `<div class="fv-insp-hint">Convolution inspector: click a position of the map above.</div>`;
      return;
    }
    if (!ins.ok) {
      this.insp.innerHTML = `<div class="fv-insp-msg"></div>`;
      this.insp.firstChild.textContent = ins.message;
      return;
    }
    this.insp.innerHTML = inspectorHTML(ins, this.shownChannel, this.cmaps.RdBu_r);
    this.insp.querySelectorAll("tr[data-channel]").forEach((tr) => {
      tr.addEventListener("click", () => { this.shownChannel = Number(tr.dataset.channel); this.renderInspector(); });
    });
  }
}

function cellStyle(v, top, cmap) {
  if (!cmap) {
    const g = Math.round(255 * Math.max(0, Math.min(1, v)));
    return `background: rgb(${g},${g},${g}); color: ${g > 140 ? "#000" : "#fff"}`;
  }
  const k = cmapIndex((v + top) / (2 * top)) * 3;
  const lum = 0.299 * cmap[k] + 0.587 * cmap[k + 1] + 0.114 * cmap[k + 2];
  return `background: rgb(${cmap[k]},${cmap[k + 1]},${cmap[k + 2]}); color: ${lum > 140 ? "#000" : "#fff"}`;
}

function table(grid, kind, cmap, inside) {
  const flat = grid.flat();
  const big = grid.length > 7 || grid[0].length > 7;
  let html = `<table class="fv-grid fv-${kind}${big ? " fv-big" : ""}">`;
  const lo = Math.min(...flat), hi = Math.max(...flat);
  const top = Math.max(...flat.map(Math.abs)) || 1;
  grid.forEach((row, r) => {
    html += "<tr>";
    row.forEach((v, q) => {
      const style = kind === "patch" ? cellStyle(hi > lo ? (v - lo) / (hi - lo) : 0, 1, null) : cellStyle(v, top, cmap);
      const pad = inside && !inside[r][q] ? " fv-pad" : "";
      html += `<td class="${pad.trim()}" style="${style}" title="${v}">${big ? "" : fmt(v, 2)}</td>`;
    });
    html += "</tr>";
  });
  return html + "</table>";
}

function inspectorHTML(ins, chosen, cmap) {
  const many = ins.channels > 1;
  const shown = ins.shown.find((s) => s.channel === chosen) || ins.shown[0];
  let html = `<div class="fv-insp-head">${esc(ins.layer)} · filter ${ins.channel} · row ${ins.row}, column ${ins.col}: how this value was made</div>`;
  html += `<div class="fv-insp-body">`;
  if (many) {
    const top = Math.max(...ins.ranked.map((r) => Math.abs(r[1]))) || 1;
    html += `<div class="fv-insp-rank"><div class="fv-cap">each input channel's part (patch × kernel, summed), largest first</div><table>`;
    ins.ranked.slice(0, 12).forEach(([ch, v]) => {
      const w = Math.round(90 * Math.abs(v) / top);
      const sel = ch === shown.channel ? " fv-sel" : "";
      const clickable = ins.shown.some((s) => s.channel === ch) ? ` data-channel="${ch}"` : "";
      html += `<tr class="fv-rank-row${sel}"${clickable}><td>channel ${ch}</td><td><span class="fv-bar ${v < 0 ? "fv-neg" : "fv-pos"}" style="width:${w}px"></span></td><td class="fv-num" data-value="${v}">${v >= 0 ? "+" : ""}${num(v)}</td></tr>`;
    });
    const rest = ins.ranked.slice(12);
    if (rest.length) {
      const s = rest.reduce((a, r) => a + r[1], 0);
      html += `<tr><td>${rest.length} more channels</td><td></td><td class="fv-num">${s >= 0 ? "+" : ""}${num(s)}</td></tr>`;
    }
    html += `</table></div>`;
  }
  const which = many ? ` (input channel ${shown.channel})` : "";
  html += `<div class="fv-insp-grids"><figure><figcaption>input patch${which}</figcaption>${table(shown.patch, "patch", null, ins.inside)}</figure>`;
  html += `<div class="fv-op">×</div><figure><figcaption>kernel</figcaption>${table(shown.kernel, "kernel", cmap)}</figure>`;
  html += `<div class="fv-op">=</div><figure><figcaption>products</figcaption>${table(shown.products, "products", cmap, ins.inside)}</figure>`;
  html += `<div class="fv-op">Σ</div><div class="fv-chsum" data-value="${shown.sum}">${num(shown.sum)}</div></div></div>`;
  const where = many ? `of the products over all ${ins.channels} input channels` : "of the products";
  html += `<div class="fv-insp-sum">sum ${where} <span class="fv-num fv-insp-products" data-value="${ins.sum}">${num(ins.sum)}</span>`;
  html += ` + bias <span class="fv-num fv-insp-bias" data-value="${ins.bias}">${num(ins.bias)}</span>`;
  html += ` = <b class="fv-num fv-insp-total" data-value="${ins.total}">${num(ins.total)}</b>`;
  html += ` <span class="fv-insp-check">(the map holds <span class="fv-insp-value" data-value="${ins.value}">${num(ins.value)}</span>)</span></div>`;
  return html;
}

export default {
  render({ model, el }) {
    const pic = new Picture(model, el);
    const redraw = () => pic.schedule();
    model.on("change:payload", () => { pic.unpack(); redraw(); });
    model.on("change:meta", () => { pic.unpack(); redraw(); });
    model.on("change:colormaps", () => { pic.unpack(); redraw(); });
    model.on("change:layer_index", () => pic.onLayer());
    model.on("change:channel", redraw);
    model.on("change:view_index", redraw);
    model.on("change:scale_index", redraw);
    model.on("change:inspection", () => { pic.pending = null; pic.fromKernel(); redraw(); });
    if (pic.saved) {   // a saved page: one precomputed payload per image
      model.on("change:image_index", () => { pic.unpack(); redraw(); pic.labelFollows(); });
      model.on("change:digit_index", () => pic.onDigit());
    }
    if (pic.local) {   // the browser engine: the state is computed here
      const again = () => { pic.unpack(); redraw(); };
      for (const k of ["image_index", "snapshot_index", ...PERTURBATION]) model.on(`change:${k}`, again);
      model.on("change:image_index", () => pic.labelFollows());
      model.on("change:digit_index", () => pic.onDigit());
    }
    pic.findFilterControl();
    if (pic.local || pic.saved) pic.labelFollows();   // an image chosen in Python before it showed
    if (!model.get("page_open")) {   // from now on the page sets the filter slider's range
      model.set("page_open", true);
      model.save_changes();
    }
    pic.draw();
    return () => { pic.root.remove(); };
  },
};
