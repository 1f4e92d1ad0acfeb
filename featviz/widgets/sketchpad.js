// The sketchpad's front end (anywidget): a pad to draw on, the 28x28 input the
// network sees, the prediction with its probabilities, and one layer's feature maps.
//
// The drawing is kept on an offscreen canvas, one alpha value per pixel (ink = 255).
// Two engines read it (the trait _engine says which):
// - "browser": the kernel sent the network once (_network, _network_weights); here the
//   drawing is made into the input the MNIST way (imageops.js) and the network runs
//   (forward.js) once per frame while the pen moves, and at once when it lifts;
// - "kernel": the drawing is sent at most every SEND_MS, and once more when the pen
//   lifts; the kernel answers with the prediction and the maps as uint8 plus an
//   offset and a scale per map.
// Either way the drawing is sent to the kernel, so Python's pad.pixels and
// pad.prediction follow. Maps are painted through colour tables the kernel sent once.

import { decode, forward, softmax, argmax } from "./forward.js";
import { mnistStyle, resize, MNIST_MEAN, MNIST_STD } from "./imageops.js";
import { colorScale, fmt, gridShape } from "./style.js";
import { bytesOf, mapValue } from "./codec.js";

const SEND_MS = 30;        // at most one drawing sent to the kernel per this many ms
const STALE_MS = 2000;     // an unanswered drawing older than this no longer holds the next
const BASE_SIDE = 140;     // the drawing side at which `brush` is measured (RESOLUTION)
const PAD_CSS = 280;       // the pad on the page, CSS pixels
const INPUT_CSS = 112;     // the 28x28 input, 4 CSS pixels per pixel
const GRID_CSS = 640;      // the widest the grid of maps may be
const CELL_MAX = 88;       // the largest a single map is drawn
const GAP = 6;             // between maps
const LABEL = 14;          // room under each map for its number
const INK_RGB = [24, 28, 44];

function make(tag, cls, parent, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// Size a canvas for CSS pixels w x h on this screen; returns its context in CSS units.
function sized(canvas, w, h) {
  const r = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(w * r));
  canvas.height = Math.max(1, Math.round(h * r));
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(r, 0, 0, r, 0, 0);
  return ctx;
}

function fontOf(node, size, weight = 400) {
  const family = getComputedStyle(node).fontFamily || "system-ui, sans-serif";
  return `${weight} ${size}px ${family}`;
}

// ------------------------------------------------------------------ layout

function build(root) {
  root.classList.add("featviz-sketchpad");
  const message = make("div", "fvs-message", root);  // problems first, where they are seen
  const top = make("div", "fvs-top", root);

  const padBox = make("div", "fvs-panel fvs-pad-panel", top);
  make("div", "fvs-title", padBox, "Draw a digit");
  const pad = make("canvas", "fvs-pad", padBox);
  pad.setAttribute("aria-label", "drawing pad: draw a digit with the mouse, a pen or a finger");
  const tools = make("div", "fvs-tools", padBox);
  const brushLabel = make("label", "fvs-brush-label", tools, "brush");
  const brush = make("input", "fvs-brush", brushLabel);
  Object.assign(brush, { type: "range", min: "4", max: "28", step: "1" });
  const brushDot = make("span", "fvs-brush-dot", tools);
  const clear = make("button", "fvs-clear", tools, "Clear");
  clear.type = "button";

  const inputBox = make("div", "fvs-panel fvs-input-panel", top);
  make("div", "fvs-title", inputBox, "What the network sees");
  const input = make("canvas", "fvs-input", inputBox);
  const inputNote = make("div", "fvs-note", inputBox);

  const result = make("div", "fvs-panel fvs-result-panel", top);
  make("div", "fvs-title", result, "Prediction");
  const head = make("div", "fvs-head", result);
  const prediction = make("div", "fvs-prediction", head, "–");
  const confidence = make("div", "fvs-confidence", head, "");
  const bars = make("div", "fvs-bars", result);

  const mapsBox = make("div", "fvs-maps", root);
  const mapsTitle = make("div", "fvs-title", mapsBox);
  const mapsRow = make("div", "fvs-maps-row", mapsBox);
  const grid = make("canvas", "fvs-grid", mapsRow);
  const bar = make("div", "fvs-colorbar", mapsRow);
  const barCanvas = make("canvas", "fvs-colorbar-canvas", bar);
  const barTicks = make("div", "fvs-colorbar-ticks", bar);
  const mapsEmpty = make("div", "fvs-maps-empty", mapsBox);
  return { pad, brush, brushDot, clear, input, inputNote, prediction, confidence, bars,
           mapsTitle, mapsRow, grid, barCanvas, barTicks, mapsEmpty, message };
}

// ------------------------------------------------------------------ the drawing

function makeInk(model, ui, root) {
  const ink = document.createElement("canvas");
  let ctx = null;
  let hasInk = false;
  const padCtx = sized(ui.pad, PAD_CSS, PAD_CSS);

  function resize(h, w) {
    ink.width = w;
    ink.height = h;
    ctx = ink.getContext("2d", { willReadFrequently: true });
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.fillStyle = ctx.strokeStyle = `rgb(${INK_RGB.join(",")})`;
  }

  function paint() {
    padCtx.clearRect(0, 0, PAD_CSS, PAD_CSS);
    if (!hasInk) {
      padCtx.fillStyle = "rgba(120, 120, 130, 0.55)";
      padCtx.font = fontOf(ui.pad, 15);
      padCtx.textAlign = "center";
      padCtx.fillText("draw here", PAD_CSS / 2, PAD_CSS / 2 + 5);
    }
    padCtx.imageSmoothingEnabled = true;
    padCtx.imageSmoothingQuality = "high";
    padCtx.drawImage(ink, 0, 0, PAD_CSS, PAD_CSS);
  }

  function load() {  // the drawing from the model (set in Python, or at start)
    const [h, w] = model.get("_ink_shape");
    const data = bytesOf(model.get("_ink"));
    if (!ctx || ink.width !== w || ink.height !== h) resize(h, w);
    const img = ctx.createImageData(w, h);
    hasInk = false;
    for (let i = 0; i < w * h; i++) {
      const a = data[i] || 0;
      img.data[4 * i] = INK_RGB[0];
      img.data[4 * i + 1] = INK_RGB[1];
      img.data[4 * i + 2] = INK_RGB[2];
      img.data[4 * i + 3] = a;
      if (a) hasInk = true;
    }
    ctx.putImageData(img, 0, 0);
    paint();
  }

  function read() {
    const { width: w, height: h } = ink;
    const d = ctx.getImageData(0, 0, w, h).data;
    const out = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) out[i] = d[4 * i + 3];
    return out;
  }

  // One pen stroke is drawn as one path, redrawn whole over the drawing as it was
  // before the pen went down: overlapping segments would darken their soft edges.
  let before = null;
  let points = [];

  function begin(p) {
    before = ctx.getImageData(0, 0, ink.width, ink.height);
    points = [p];
    trace();
  }

  function extend(more) {
    points.push(...more);
    ctx.putImageData(before, 0, 0);
    trace();
  }

  function trace() {
    ctx.lineWidth = (model.get("brush") * ink.width) / BASE_SIDE;
    ctx.beginPath();
    if (points.length === 1) {
      ctx.arc(points[0][0], points[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.moveTo(points[0][0], points[0][1]);
      for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
      ctx.stroke();
    }
    hasInk = true;
  }

  function wipe() {
    ctx.clearRect(0, 0, ink.width, ink.height);
    hasInk = false;
    paint();
  }

  function at(e) {  // a pointer event's position in drawing pixels
    const r = ui.pad.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * ink.width, ((e.clientY - r.top) / r.height) * ink.height];
  }

  load();
  return { load, read, begin, extend, wipe, paint, at, size: () => [ink.height, ink.width] };
}

// Sends the drawing: while drawing, at most every SEND_MS and at most one drawing
// unanswered, so a busy kernel gets the latest drawing instead of a queue of old ones;
// when the pen lifts (or the pad is cleared), at once: `send(true)`.
function makeSender(model, ink, root) {
  let last = -Infinity;
  let timer = null;
  let waiting = null;   // {seq, at} of the drawing sent and not yet answered
  let owed = false;     // a newer drawing is waiting for that answer
  const state = { sending: false };

  function busy() {
    // an answer lost (a restarted kernel) must not stop the pad for good
    return waiting !== null && performance.now() - waiting.at < STALE_MS;
  }

  function send(now = false) {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    if (busy() && !now) {
      owed = true;
      root.dataset.pending = "1";
      timer = setTimeout(send, STALE_MS - (performance.now() - waiting.at) + 1);
      return;
    }
    owed = false;
    last = performance.now();
    const seq = model.get("_seq") + 1;
    waiting = { seq, at: last };
    const data = ink.read();
    state.sending = true;  // our own change: do not reload the drawing from it
    try {
      model.set("_ink", new DataView(data.buffer));
      model.set("_seq", seq);
    } finally {
      state.sending = false;
    }
    model.save_changes();
    root.dataset.sent = String(seq);
    root.dataset.pending = "1";
  }

  function soon() {
    if (busy()) { send(); return; }  // marks the drawing as owed
    const wait = SEND_MS - (performance.now() - last);
    if (wait <= 0) send();
    else if (timer === null) timer = setTimeout(send, wait);
  }

  function answered(seq) {  // the kernel answered drawing `seq`: send what is owed
    if (waiting !== null && seq >= waiting.seq) waiting = null;
    if (owed && waiting === null) send();
    else if (waiting === null && timer === null) root.dataset.pending = "0";
  }

  return { send, soon, answered, state, stop: () => timer !== null && clearTimeout(timer) };
}

// `changed(lifted)` is told of every change the pen makes to the drawing.
function bindPointer(ui, ink, changed) {
  let down = null;  // the pointer drawing, and where it was
  const pad = ui.pad;
  pad.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    down = { id: e.pointerId };
    ink.begin(ink.at(e));
    ink.paint();
    changed(false);
  });
  pad.addEventListener("pointermove", (e) => {
    if (!down || e.pointerId !== down.id) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    ink.extend((events.length ? events : [e]).map((ev) => ink.at(ev)));
    ink.paint();
    changed(false);
  });
  const lift = (e) => {
    if (!down || e.pointerId !== down.id) return;
    down = null;
    changed(true);
  };
  pad.addEventListener("pointerup", lift);
  pad.addEventListener("pointercancel", lift);
}

// ------------------------------------------------------------------ the answer

function drawInput(ui, [h, w], data) {
  const ctx = sized(ui.input, INPUT_CSS, INPUT_CSS);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, INPUT_CSS, INPUT_CSS);
  if (data.length !== h * w) return;
  const tile = document.createElement("canvas");
  tile.width = w;
  tile.height = h;
  const tctx = tile.getContext("2d");
  const img = tctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = data[i];
    img.data[4 * i + 3] = 255;
  }
  tctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, 0, 0, INPUT_CSS, INPUT_CSS);
  ui.inputNote.textContent = h === 28 && w === 28
    ? "28×28: cropped to the ink, scaled into 20×20, centred by its centre of mass"
    : `${h}×${w}: made 28×28 the MNIST way, then resized`;
}

function drawProbabilities(ui, probs, pred, names) {
  const name = (k) => (names[k] !== undefined ? names[k] : String(k));
  const shown = probs.length ? (probs.length <= 12 ? probs.map((_, k) => k)
    : probs.map((p, k) => [p, k]).sort((a, b) => b[0] - a[0]).slice(0, 10).map((x) => x[1]))
    : [...Array(names.length || 10).keys()];
  ui.prediction.textContent = pred === null || pred === undefined ? "–" : name(pred);
  ui.prediction.classList.toggle("fvs-none", pred === null || pred === undefined);
  ui.confidence.textContent = pred === null || pred === undefined
    ? "draw a digit" : `${(100 * probs[pred]).toFixed(probs[pred] >= 0.0995 ? 0 : 1)}% sure`;
  ui.bars.replaceChildren();
  for (const k of shown) {
    const p = probs.length ? probs[k] : 0;
    const row = make("div", "fvs-bar" + (k === pred ? " fvs-best" : ""), ui.bars);
    row.dataset.cls = String(k);
    make("span", "fvs-bar-name", row, name(k));
    const track = make("span", "fvs-bar-track", row);
    make("span", "fvs-bar-fill", track).style.width = `${(100 * p).toFixed(1)}%`;
    make("span", "fvs-bar-value", row, probs.length ? `${(100 * p).toFixed(p >= 0.0995 ? 0 : 1)}%` : "");
  }
}

function drawColorbar(ui, lut, meta, height) {
  const ctx = sized(ui.barCanvas, 12, height);
  for (let y = 0; y < height; y++) {
    const i = Math.round(255 * (1 - y / Math.max(1, height - 1)));
    ctx.fillStyle = `rgb(${lut[3 * i]},${lut[3 * i + 1]},${lut[3 * i + 2]})`;
    ctx.fillRect(0, y, 12, 1);
  }
  ui.barTicks.style.height = `${height}px`;
  const [lo, zero, hi] = meta.ticks;
  ui.barTicks.replaceChildren();
  make("span", "fvs-tick fvs-tick-top", ui.barTicks, hi);
  if (meta.vmin < 0) make("span", "fvs-tick fvs-tick-mid", ui.barTicks, zero);
  make("span", "fvs-tick fvs-tick-bottom", ui.barTicks, lo);
}

// The kernel's maps: uint8 values with an offset and a scale per map.
function kernelMaps(model) {
  const meta = model.get("_maps_meta") || {};
  const data = bytesOf(model.get("_maps"));
  const ready = meta.shape && data.length === meta.shape[0] * meta.shape[1] * meta.shape[2];
  if (!ready) return null;
  return { ...meta, value: (m, i) => mapValue(data, 0, meta.offset, meta.scale, meta.shape, m, i) };
}

// One layer's maps computed here, laid out and scaled as sketchpad_reader.maps_message does.
function pageMaps(found, layer, maxMaps) {
  if (!found || found.shape.length !== 3) return null;
  const [total, h, w] = found.shape;
  const c = Math.min(total, maxMaps);
  const shown = found.data.subarray(0, c * h * w);
  const [cmap, vmin, vmax] = colorScale(shown);
  const [rows, cols] = gridShape(c, c <= 32 ? 8 : 16);
  return { shape: [c, h, w], total, layer, cmap, vmin, vmax, rows, cols,
           ticks: [fmt(vmin), fmt(0), fmt(vmax)], value: (m, i) => shown[m * h * w + i] };
}

function drawMaps(ui, meta, layer, luts) {
  const ready = meta !== null;
  ui.mapsRow.style.display = ready ? "" : "none";
  ui.mapsEmpty.style.display = ready ? "none" : "";
  if (!ready) {
    ui.mapsTitle.textContent = `Feature maps of ${layer}`;
    ui.mapsEmpty.textContent = `Draw a digit: the feature maps of ${layer} appear here as you draw.`;
    return;
  }
  const [c, h, w] = meta.shape;
  const { rows, cols, vmin, vmax } = meta;
  const more = meta.total > c ? ` (the first ${c} shown)` : "";
  ui.mapsTitle.textContent = `Feature maps of ${meta.layer}: ${meta.total} maps of ${h}×${w}${more}, one colour scale`;
  const lut = bytesOf((luts || {})[meta.cmap]);
  const zoom = Math.max(1, Math.min(Math.floor((GRID_CSS - (cols - 1) * GAP) / cols / w),
                                    Math.floor(CELL_MAX / Math.max(h, w)) || 1));
  const cw = w * zoom, ch = h * zoom;
  const width = cols * cw + (cols - 1) * GAP, height = rows * (ch + LABEL) + (rows - 1) * (GAP - 2);
  const ctx = sized(ui.grid, width, height);
  const tile = document.createElement("canvas");
  tile.width = w;
  tile.height = h;
  const tctx = tile.getContext("2d");
  const img = tctx.createImageData(w, h);
  const span = vmax - vmin || 1;
  ctx.imageSmoothingEnabled = false;
  ctx.font = fontOf(ui.grid, 10);
  ctx.textAlign = "center";
  ctx.fillStyle = getComputedStyle(ui.grid).color || "#555";
  for (let m = 0; m < c; m++) {
    for (let i = 0; i < h * w; i++) {
      const v = meta.value(m, i);
      const k = 3 * Math.min(255, Math.max(0, Math.round((255 * (v - vmin)) / span)));
      img.data[4 * i] = lut[k];
      img.data[4 * i + 1] = lut[k + 1];
      img.data[4 * i + 2] = lut[k + 2];
      img.data[4 * i + 3] = 255;
    }
    tctx.putImageData(img, 0, 0);
    const x = (m % cols) * (cw + GAP), y = Math.floor(m / cols) * (ch + LABEL + GAP - 2);
    ctx.drawImage(tile, x, y, cw, ch);
    ctx.fillText(String(m), x + cw / 2, y + ch + 11);
  }
  drawColorbar(ui, lut, meta, rows * ch + (rows - 1) * (LABEL + GAP - 2));
}

// ------------------------------------------------------------------ the browser engine

// The network the kernel sent, run here on the drawing: input, logits and every map.
function makePageReader(model) {
  let net = null, problem = "";
  try {
    net = decode({ ...model.get("_network"), weights: model.get("_network_weights") });
  } catch (e) {
    problem = `The network could not run in this page (${e.message}); the kernel reads the drawing instead.`;
  }

  function read(pixels, h, w) {
    const [c, H, W] = net.inputShape;
    let x = mnistStyle(pixels, h, w);
    if (H !== 28 || W !== 28) x = resize(x, 28, 28, H, W, { antialias: false });
    if (c > 1) {   // a colour model: the grey input in every channel
      const grey = x;
      x = new Float32Array(c * H * W);
      for (let k = 0; k < c; k++) x.set(grey, k * H * W);
    }
    const empty = !pixels.some((v) => v > 0);
    return { x, shape: [c, H, W], empty, ...(empty ? {} : forward(net, x)) };
  }
  return { ok: net !== null, problem, read };
}

// The input as grey display pixels, as sketchpad_reader.input_picture makes them.
function inputPicture({ x, shape: [c, h, w] }) {
  const n = h * w, out = new Uint8Array(n);
  if (c === 1 && h === 28 && w === 28) {
    for (let i = 0; i < n; i++) out[i] = Math.round(255 * Math.min(1, Math.max(0, x[i] * MNIST_STD + MNIST_MEAN)));
    return out;
  }
  const grey = new Float32Array(n);
  for (let k = 0; k < c; k++) for (let i = 0; i < n; i++) grey[i] += x[k * n + i] / c;
  let lo = Infinity, hi = -Infinity;
  for (const v of grey) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (let i = 0; i < n; i++) out[i] = hi > lo ? Math.round(255 * (grey[i] - lo) / (hi - lo)) : 0;
  return out;
}

function render({ model, el }) {
  const root = make("div", "", el);
  const ui = build(root);
  const ink = makeInk(model, ui, root);
  const sender = makeSender(model, ink, root);
  const page = model.get("_engine") === "browser" ? makePageReader(model) : null;
  const inPage = page !== null && page.ok;
  const engine = make("div", "fvs-engine", root);
  engine.textContent = inPage
    ? "The network runs in this page: the prediction follows the pen, with no kernel round trip."
    : `The kernel reads the drawing. ${page ? page.problem : model.get("_engine_note")}`.trim();
  root.dataset.engine = inPage ? "browser" : "kernel";

  let reads = 0, frame = null;
  const readHere = () => {   // the browser engine: read the drawing and draw the answer
    if (frame !== null) { cancelAnimationFrame(frame); frame = null; }
    const r = page.read(ink.read(), ...ink.size());
    drawInput(ui, r.shape.slice(1), inputPicture(r));
    const names = model.get("classes") || [];
    const flat = r.empty ? null : r.logits;
    if (flat && flat.length >= 2) {
      const probs = Array.from(softmax(flat));
      const pred = argmax(flat);
      drawProbabilities(ui, probs, pred, names);
      root.dataset.prediction = String(pred);
    } else {
      drawProbabilities(ui, [], null, names);
      root.dataset.prediction = "";
    }
    const layer = (model.get("_layer_names") || [])[model.get("_layer_index")] ?? model.get("layer");
    drawMaps(ui, r.empty ? null : pageMaps(r.maps[layer], layer, model.get("_max_maps")), layer,
             model.get("_luts"));
    root.dataset.reads = String(++reads);
  };
  const changed = (lifted) => {
    if (lifted) sender.send(true); else sender.soon();
    if (!inPage) return;
    if (lifted) readHere();
    else if (frame === null) frame = requestAnimationFrame(() => { frame = null; readHere(); });
  };
  bindPointer(ui, ink, changed);

  const syncBrush = () => {
    const b = model.get("brush");
    ui.brush.value = String(b);
    const px = (b * PAD_CSS) / BASE_SIDE;
    Object.assign(ui.brushDot.style, { width: `${px}px`, height: `${px}px` });
    ui.brushDot.title = `brush ${b}`;
  };
  ui.brush.addEventListener("input", () => {
    model.set("brush", Number(ui.brush.value));
    model.save_changes();
  });
  ui.clear.addEventListener("click", () => { ink.wipe(); changed(true); });

  const onInk = () => {
    if (sender.state.sending) return;
    ink.load();
    if (inPage) readHere();
  };
  const onLayer = () => { if (inPage) readHere(); };
  const onAnswer = () => {
    if (!inPage) {   // the kernel's answer is what the pad shows
      drawInput(ui, model.get("_input_shape"), bytesOf(model.get("_input")));
      drawProbabilities(ui, model.get("probabilities") || [], model.get("prediction"),
                        model.get("classes") || []);
      drawMaps(ui, kernelMaps(model), model.get("layer"), model.get("_luts"));
    }
    const text = model.get("message");
    ui.message.textContent = text;
    ui.message.style.display = text ? "" : "none";
    root.dataset.seq = String(model.get("_answered"));
    root.dataset.version = String(model.get("_version"));
    sender.answered(model.get("_answered"));
  };
  model.on("change:_ink", onInk);
  model.on("change:_ink_shape", onInk);
  model.on("change:brush", syncBrush);
  model.on("change:_version", onAnswer);
  model.on("change:layer", onLayer);
  model.on("change:_layer_index", onLayer);
  syncBrush();
  onAnswer();
  if (inPage) readHere();
  return () => {
    sender.stop();
    if (frame !== null) cancelAnimationFrame(frame);
    model.off("change:layer", onLayer);
    model.off("change:_layer_index", onLayer);
    model.off("change:_ink", onInk);
    model.off("change:_ink_shape", onInk);
    model.off("change:brush", syncBrush);
    model.off("change:_version", onAnswer);
  };
}

export default { render };
