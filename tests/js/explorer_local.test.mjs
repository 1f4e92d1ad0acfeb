// The explorer's browser engine (featviz/widgets/explorer_local.js) held to Python's answer:
// every state's payload equal to ExplorerData.payload's, every inspection to inspection's.
//
//   python tests/js/make_explorer_fixtures.py DIR
//   FEATVIZ_JS_EXPLORER_FIXTURES=DIR node --test tests/js/explorer_local.test.mjs
//
// tests/test_js.py does both in a temporary folder. Without the variable only the by-hand
// tests run and the parity tests show as a todo (not a skip: tests/test_js.py asks for none
// skipped). node:test and node:assert only.
//
// What "equal" means where float arithmetic differs (the forward pass sums in another
// order): the layout (every start, shape, size) and the words identical; every uint8 map
// and picture value within 1 of Python's; offsets, scales and colour limits within 1e-5
// relative, or 1e-6 absolute times the layer's largest magnitude (its shared limit, at least
// 1): a map whose values nearly cancel (a largest value of 0.04 in a layer reaching 10)
// carries the layer's absolute float error, some 1e-6 of 10, in float32 in both engines
// (PyTorch's own error against float64 is larger there than forward.js's); the filters
// byte for byte; probabilities within 1e-5.
import {describe, test} from "node:test";
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {join} from "node:path";

import {openBundle, payloadFor, inspect, describe as words, runSteps}
  from "../../featviz/widgets/explorer_local.js";
import {formatG} from "../../featviz/widgets/style.js";

const FIXTURES = process.env.FEATVIZ_JS_EXPLORER_FIXTURES;
const REL = 1e-5, ABS = 1e-6;     // offsets, scales, limits
const PROB = 1e-5;                // probabilities
const STEP = 1;                   // uint8 map and picture values
// the inspector's numbers come from the conv's input (a forward pass for conv2), made
// float32 sums in another order, 1e-5 of the size of what is summed
const INSPECT = 1e-5;

const close = (a, b, rel = REL, abs = ABS) => Math.abs(a - b) <= Math.max(abs, rel * Math.abs(b));

function readFixtures(folder) {
  const index = JSON.parse(readFileSync(join(folder, "index.json"), "utf8"));
  const meta = JSON.parse(readFileSync(join(folder, "bundle.json"), "utf8"));
  const bytes = readFileSync(join(folder, "bundle.bin"));
  return {index, meta, bytes, payloads: readFileSync(join(folder, "payloads.bin"))};
}

function floatsAt(bytes, start, n) {
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, 4 * n);
  return Float32Array.from({length: n}, (_, i) => view.getFloat32(4 * i, true));
}

// The worst of a comparison: {diff, at, got, want}, kept as the largest "badness" seen.
class Worst {
  constructor(what) { this.what = what; this.bad = 0; this.where = "none"; this.count = 0; }
  see(badness, where) {
    if (badness > 1) this.count++;
    if (!(badness <= this.bad)) { this.bad = badness; this.where = where; }
  }
  message(total) {
    return `${this.count} of ${total} ${this.what} out of tolerance; the worst: ${this.where}`;
  }
}

// How far a float is from Python's, in units of its tolerance (<= 1 passes).
const badness = (got, want, rel = REL, abs = ABS) =>
  Math.abs(got - want) / Math.max(abs, rel * Math.abs(want));

// Every difference between JavaScript's payload and Python's, as readable lines, and the
// worst values seen into `worst` (maps, floats).
function comparePayload(name, got, gotMeta, want, wantMeta, worst) {
  const problems = [];
  const say = (text) => problems.push(`${name}: ${text}`);
  if (got.length !== want.length) say(`${got.length} bytes, Python ${want.length}`);
  const {layers: gl, input: gi, prediction: gp, ...gw} = gotMeta;
  const {layers: wl, input: wi, prediction: wp, ...ww} = wantMeta;
  // the words: equal (correct may differ only where the top two probabilities tie)
  const tie = wp && wp.top.length > 1 && Math.abs(wp.top[0][1] - wp.top[1][1]) <= PROB;
  for (const key of new Set([...Object.keys(gw), ...Object.keys(ww)])) {
    if (key === "correct" && tie) continue;
    if (JSON.stringify(gw[key]) !== JSON.stringify(ww[key])) {
      say(`meta.${key} is ${JSON.stringify(gw[key])}, Python ${JSON.stringify(ww[key])}`);
    }
  }
  if (JSON.stringify(Object.keys(gotMeta)) !== JSON.stringify(Object.keys(wantMeta))) {
    say(`meta keys ${Object.keys(gotMeta)}, Python ${Object.keys(wantMeta)}`);
  }
  if (JSON.stringify(gi) !== JSON.stringify(wi)) {
    say(`meta.input ${JSON.stringify(gi)}, Python ${JSON.stringify(wi)}`);
  }
  if (!wp !== !gp) say(`prediction ${JSON.stringify(gp)}, Python ${JSON.stringify(wp)}`);
  if (wp && gp) {
    if (gp.name !== wp.name && !tie) say(`predicts ${gp.name}, Python ${wp.name}`);
    if (!close(gp.p, wp.p, 0, PROB)) say(`p ${gp.p}, Python ${wp.p}`);
    if (gp.top.length !== wp.top.length) say(`top ${JSON.stringify(gp.top)}, Python ${JSON.stringify(wp.top)}`);
    wp.top.forEach(([wn, wpv], i) => {
      const [gn, gpv] = gp.top[i] ?? [];
      if (!close(gpv, wpv, 0, PROB)) say(`top[${i}] p ${gpv}, Python ${wpv}`);
      // a name may differ only where Python's probabilities there tie within PROB
      const tied = wp.top.some(([n, v], j) => j !== i && n === gn && Math.abs(v - wpv) <= PROB) ||
        wp.top.every(([n]) => n !== gn) && i === wp.top.length - 1;
      if (gn !== wn && !tied) say(`top[${i}] is ${gn}, Python ${wn}`);
    });
  }
  // the layout: every key but the numbers equal; shared limits close
  if (gl.length !== wl.length) say(`${gl.length} layers, Python ${wl.length}`);
  wl.forEach((W, li) => {
    const G = gl[li];
    if (!G) return;
    const {shared: gs, ...gk} = G;
    const {shared: ws, ...wk} = W;
    if (JSON.stringify(gk) !== JSON.stringify(wk)) {
      say(`layer ${W.name}: ${JSON.stringify(gk)}, Python ${JSON.stringify(wk)}`);
      return;
    }
    ws.forEach((v, i) => {
      const b = badness(gs[i], v);
      worst.floats.see(b, `${name}, ${W.name} shared[${i}]: JS ${gs[i]}, Python ${v}`);
      if (b > 1) say(`layer ${W.name} shared[${i}] ${gs[i]}, Python ${v}`);
    });
    const [C, H, Wd] = W.shape, n = H * Wd;
    // per map: offset, scale, own limits low, high; absolute error on the layer's scale
    const gf = floatsAt(got, W.floats, 4 * C), wf = floatsAt(want, W.floats, 4 * C);
    const parts = ["offset", "scale", "own low", "own high"];
    const layerAbs = ABS * Math.max(1, Math.abs(ws[0]), Math.abs(ws[1]));
    let over = 0;
    for (let i = 0; i < 4 * C; i++) {
      const b = badness(gf[i], wf[i], REL, layerAbs);
      worst.floats.see(b, `${name}, ${W.name} map ${i % C} ${parts[Math.floor(i / C)]}: ` +
        `JS ${gf[i]}, Python ${wf[i]}`);
      if (b > 1) over++;
    }
    if (over) say(`layer ${W.name}: ${over} of ${4 * C} offsets/scales/limits off`);
    over = 0;
    for (let i = 0; i < C * n; i++) {
      const d = Math.abs(got[W.start + i] - want[W.start + i]);
      worst.maps.see(d / STEP, `${name}, ${W.name} map ${Math.floor(i / n)} at ` +
        `(${Math.floor((i % n) / Wd)}, ${i % Wd}): JS ${got[W.start + i]}, Python ` +
        `${want[W.start + i]}`);
      if (d > STEP) over++;
    }
    if (over) say(`layer ${W.name}: ${over} of ${C * n} uint8 values differ by more than ${STEP}`);
    if (W.kernel) {
      const k = W.kernel, count = k.dims.reduce((a, b) => a * b, 1);
      const same = (s, len) => Buffer.compare(Buffer.from(got.subarray(s, s + len)),
        Buffer.from(want.subarray(s, s + len))) === 0;
      if (!same(k.start, count) || !same(k.floats, 8 * k.dims[0])) {
        say(`layer ${W.name}: the filters differ from Python's`);
      }
    }
  });
  if (wi && JSON.stringify(gi) === JSON.stringify(wi)) {
    const size = wi.shape.reduce((a, b) => a * b, 1);
    let over = 0;
    for (let i = 0; i < size; i++) {
      const d = Math.abs(got[wi.start + i] - want[wi.start + i]);
      worst.picture.see(d / STEP, `${name}, picture pixel ${Math.floor(i / 3)} channel ` +
        `${i % 3}: JS ${got[wi.start + i]}, Python ${want[wi.start + i]}`);
      if (d > STEP) over++;
    }
    if (over) say(`the input picture: ${over} of ${size} values differ by more than ${STEP}`);
  }
  return problems;
}

// The inspection against Python's: problems as lines, the worst number into `worst`.
function compareInspection(name, got, want, worst) {
  const problems = [];
  const say = (text) => problems.push(`${name}: ${text}`);
  const exact = ["ok", "message", "layer", "channel", "row", "col", "channels", "origin",
    "stride", "dilation", "inside", "input_is_image"];
  for (const key of exact) {
    if (JSON.stringify(got[key]) !== JSON.stringify(want[key])) {
      say(`${key} is ${JSON.stringify(got[key])}, Python ${JSON.stringify(want[key])}`);
    }
  }
  const keys = (o) => JSON.stringify(Object.keys(o));
  if (keys(got) !== keys(want)) say(`keys ${keys(got)}, Python ${keys(want)}`);
  if (!want.ok) return problems;
  // numbers: within INSPECT of the size of what they sum
  const size = Math.max(1, Math.abs(want.value), ...want.ranked.map(([, v]) => Math.abs(v)));
  const num = (g, w, where) => {
    const b = Math.abs(g - w) / (INSPECT * size);
    worst.see(b, `${name}, ${where}: JS ${g}, Python ${w}`);
    if (!(b <= 1)) say(`${where} is ${g}, Python ${w}`);
  };
  for (const key of ["value", "bias", "sum", "total"]) num(got[key], want[key], key);
  if (got.ranked.length !== want.ranked.length) say(`${got.ranked.length} ranked channels`);
  // ranked: the k-th largest contribution close; the channel the same unless Python's
  // contributions there tie within the tolerance (then either order is right)
  want.ranked.forEach(([c, v], i) => {
    const [gc, gv] = got.ranked[i] ?? [];
    num(gv, v, `ranked[${i}]`);
    const other = want.ranked.find(([oc]) => oc === gc);
    if (gc !== c && !(other && Math.abs(Math.abs(other[1]) - Math.abs(v)) <= INSPECT * size)) {
      say(`ranked[${i}] is channel ${gc}, Python ${c}`);
    }
  });
  const shownOf = new Map(got.shown.map((s) => [s.channel, s]));
  if (got.shown.length !== want.shown.length) say(`${got.shown.length} shown channels`);
  for (const w of want.shown) {
    const g = shownOf.get(w.channel);
    if (!g) {
      const tied = got.shown.length === want.shown.length;   // a tie at the cut
      if (!tied) say(`channel ${w.channel} not shown`);
      continue;
    }
    num(g.sum, w.sum, `shown ${w.channel} sum`);
    if (JSON.stringify(g.kernel) !== JSON.stringify(w.kernel)) say(`channel ${w.channel} kernel`);
    for (const part of ["patch", "products"]) {
      w[part].forEach((row, i) => row.forEach((v, j) => {
        num(g[part][i][j], v, `shown ${w.channel} ${part}[${i}][${j}]`);
      }));
    }
  }
  return problems;
}

// ------------------------------------------------------------------ parity with Python

describe("explorer_local.js equals Python", () => {
  if (!FIXTURES) {
    test.todo("parity with Python: set FEATVIZ_JS_EXPLORER_FIXTURES after running " +
      "tests/js/make_explorer_fixtures.py DIR (tests/test_js.py does)");
    return;
  }
  const fx = readFixtures(FIXTURES);
  const local = openBundle(fx.meta, fx.bytes);

  test("the bundle opens: every snapshot, image, layer", () => {
    assert.equal(local.snapshots.length, fx.meta.snapshots.length);
    assert.equal(local.images.length, fx.meta.images.shape[0]);
    assert.deepEqual(local.layers.map((L) => L.name), fx.meta.layers.map((L) => L.name));
    assert.equal(local.noise.length, local.images[0].length);
  });

  test("float16 weights decode exactly to the float32 snapshot weights", () => {
    // the last snapshot travels as float32; the others as float16, which each value is
    const halves = fx.meta.snapshots.filter((s) => s.weights.dtype === "float16");
    assert.ok(halves.length > 0, "the fixture has float16 snapshots");
    // decoded values, read back as float16 bits by rounding, are whole multiples of a
    // power of two no finer than float16's: check a few against the bytes by hand
    const s = fx.meta.snapshots.indexOf(halves[0]);
    const w = local.snapshots[s].net.steps[0].tensors.weight.data;
    const view = new DataView(fx.bytes.buffer, fx.bytes.byteOffset + halves[0].weights.start);
    for (let i = 0; i < 16; i++) {
      const h = view.getUint16(2 * i, true);
      const e = (h >> 10) & 31, m = h & 1023, sign = h & 0x8000 ? -1 : 1;
      const want = e ? sign * (1 + m / 1024) * 2 ** (e - 15) : sign * m * 2 ** -24;
      assert.equal(w[i], want, `weight ${i}: half bits ${h.toString(16)}`);
    }
  });

  test("every state's payload equals Python's", (t) => {
    const worst = {maps: new Worst("uint8 map values"), floats: new Worst("offsets/scales/limits"),
      picture: new Worst("picture values")};
    const problems = [];
    for (const s of fx.index.states) {
      const {data, meta} = payloadFor(local, {image: s.image, snapshot: s.snapshot,
        perturbation: s.perturbation, token: s.token});
      const want = fx.payloads.subarray(s.offset, s.offset + s.size);
      problems.push(...comparePayload(`state "${s.name}"`, data, meta, want, s.meta, worst));
    }
    const summary = Object.values(worst).map((w) => `  ${w.what}: worst ${w.where}`).join("\n");
    t.diagnostic(`payloads: ${fx.index.states.length} states; the worst (1 = at tolerance):`);
    for (const w of Object.values(worst)) {
      t.diagnostic(`  ${w.what}: ${w.bad.toPrecision(3)}, ${w.where}`);
    }
    assert.deepEqual(problems, [], `payloads differ from Python's:\n${problems.join("\n")}\n` +
      summary);
  });

  test("every inspection equals Python's", (t) => {
    const worst = new Worst("inspection numbers");
    const problems = [];
    for (const c of fx.index.inspections) {
      const s = fx.index.states[c.state];
      const got = inspect(local, {image: s.image, snapshot: s.snapshot,
        perturbation: s.perturbation}, c.layer, c.channel, c.row, c.col);
      problems.push(...compareInspection(`inspection "${c.name}" (state "${s.name}")`, got,
        c.expected, worst));
    }
    t.diagnostic(`inspections: ${fx.index.inspections.length}; worst (1 = at tolerance): ` +
      `${worst.bad.toPrecision(3)}, ${worst.where}`);
    assert.deepEqual(problems, [], `inspections differ from Python's:\n${problems.join("\n")}\n` +
      `  worst: ${worst.where}`);
  });

  test("the inspector's patch times kernel adds up to the value", () => {
    for (const c of fx.index.inspections.filter((c) => c.expected.ok)) {
      const s = fx.index.states[c.state];
      const got = inspect(local, s, c.layer, c.channel, c.row, c.col);
      assert.ok(Math.abs(got.total - got.value) <= 1e-4 * Math.max(1, Math.abs(got.value)),
        `${c.name}: total ${got.total}, value ${got.value}`);
    }
  });

  test("the same state gives the same bytes; the token is the caller's", () => {
    const s = fx.index.states[3];
    const a = payloadFor(local, {...s, token: "a"}), b = payloadFor(local, {...s, token: 9});
    assert.deepEqual(a.data, b.data);
    assert.equal(a.meta.token, "a");
    assert.equal(b.meta.token, 9);
    assert.equal("token" in payloadFor(local, {image: 0}).meta, false);
  });

  test("the first conv's input is the perturbed image", () => {
    const net = local.snapshots[0].net;
    const x = local.images[2];
    assert.equal(runSteps(net, x, 0).data, x);
    assert.deepEqual(runSteps(net, x, 3).shape, net.steps[2].shape);
  });
});

// ------------------------------------------------------------------ by hand

test("describe writes Perturbation.describe's words (Python's :g)", () => {
  assert.equal(words({}), "");
  assert.equal(words({shift_x: 3}), "shifted (3, 0) px");
  assert.equal(words({shift_y: -0.5, rotate: 15}), "shifted (0, -0.5) px, rotated 15°");
  assert.equal(words({scale: 1.5, erase: 6, noise: 0.3}), "scaled 1.5x, 6x6 patch erased, noise 0.3");
  assert.equal(words({scale: 1}), "");
  assert.throws(() => words({rotation: 5}), /unknown perturbation "rotation"/);
});

test("formatG is Python's :g", () => {
  const cases = [[0, "0"], [-0, "-0"], [1, "1"], [0.5, "0.5"], [12.345678, "12.3457"],
    [1.015625, "1.01562"], [1.046875, "1.04688"], [123456, "123456"], [1234567, "1.23457e+06"],
    [0.0001, "0.0001"], [0.00001, "1e-05"], [0.000012, "1.2e-05"], [-7.25e-3, "-0.00725"],
    [1e16, "1e+16"], [999999.5, "1e+06"], [NaN, "nan"], [Infinity, "inf"], [-Infinity, "-inf"],
    [2.5, "2.5"], [100, "100"], [0.1 + 0.2, "0.3"]];
  for (const [v, want] of cases) assert.equal(formatG(v), want, `f"{${v}:g}"`);
});
