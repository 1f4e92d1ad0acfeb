// The colour policy, grid layout and number format of featviz/_style.py, for the browser.
//
// Python is the reference: tests/js/style.test.mjs holds every function here to the
// Python function of the same name on a table of values Python wrote. Pure functions,
// no DOM: the explorer and the sketchpad import them (bundled into their module by
// featviz/widgets/_bundle.py), and Node tests import this file directly.

export const POSITIVE_CMAP = "magma";
export const SIGNED_CMAP = "RdBu_r";
const SIGN_TOLERANCE = 1e-6;
const DIVERGING = new Set(["RdBu", "RdGy", "PiYG", "PRGn", "BrBG", "PuOr", "RdYlBu", "RdYlGn",
  "Spectral", "coolwarm", "bwr", "seismic"]);

export function isDiverging(cmap) {
  return DIVERGING.has(cmap.endsWith("_r") ? cmap.slice(0, -2) : cmap);
}

// Round the decimal digit string `digits` (of an exact expansion) to `keep` digits,
// half to even as Python's formatting does: returns [digits, carried] (carried: one more digit).
function roundDigits(digits, keep) {
  const head = digits.slice(0, keep).split("").map(Number);
  const rest = digits.slice(keep);
  const up = rest[0] > "5" ||
    (rest[0] === "5" && (/[1-9]/.test(rest.slice(1)) || head[keep - 1] % 2 === 1));
  if (up) {
    let i = keep - 1;
    while (i >= 0 && head[i] === 9) head[i--] = 0;
    if (i < 0) return ["1" + head.join(""), true];
    head[i] += 1;
  }
  return [head.join(""), false];
}

// Python's f"{v:.{p}g}" (default six significant digits, trailing zeros dropped).
export function formatG(v, p = 6) {
  v = Number(v);
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const [mantissa, exp] = Math.abs(v).toExponential(99).split("e");
  let [digits, carried] = roundDigits(mantissa.replace(".", ""), p);
  const x = Number(exp) + (carried ? 1 : 0);
  if (carried) digits = digits.slice(0, p);
  const sign = v < 0 ? "-" : "";
  if (x < -4 || x >= p) {
    let m = digits[0] + (p > 1 ? "." + digits.slice(1) : "");
    if (m.includes(".")) m = m.replace(/0+$/, "").replace(/\.$/, "");
    return `${sign}${m}e${x < 0 ? "-" : "+"}${String(Math.abs(x)).padStart(2, "0")}`;
  }
  let text = x >= 0 ? digits.slice(0, x + 1).padEnd(x + 1, "0") + "." + digits.slice(x + 1)
    : "0." + "0".repeat(-x - 1) + digits;
  if (text.includes(".")) text = text.replace(/0+$/, "").replace(/\.$/, "");
  return sign + text;
}

// Python's f"{v:.0f}": the nearest whole number, ties to even.
function formatWhole(v) {
  const r = Math.round(v);
  const tie = Math.abs(v - Math.trunc(v)) === 0.5;
  const n = tie ? (Math.trunc(v) % 2 === 0 ? Math.trunc(v) : Math.trunc(v) + Math.sign(v)) : r;
  return (n === 0 && v < 0 ? "-" : "") + (Object.is(n, -0) ? "0" : String(n));
}

// featviz._style.fmt: `digits` significant digits below 100, whole numbers from 100 on.
export function fmt(v, digits = 2) {
  v = Number(v) + 0;   // -0 reads "0"
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (v === 0) return "0";
  const short = formatG(v, digits);
  return Math.abs(v) < 100 && !short.includes("e+") ? short : formatWhole(v);
}

function finite(values) {
  const out = [];
  for (const v of values) if (Number.isFinite(v)) out.push(v);
  return out;
}

// featviz._style.color_scale: [cmap, vmin, vmax] for showing all of `values`.
export function colorScale(values, cmap = null) {
  const f = finite(values);
  let lo = 0, hi = 0;
  if (f.length) { lo = Math.min(...f); hi = Math.max(...f); }
  const top = Math.max(Math.abs(lo), Math.abs(hi));
  const signed = top > 0 && lo < -SIGN_TOLERANCE * top;
  const name = cmap || (signed ? SIGNED_CMAP : POSITIVE_CMAP);
  if (top === 0) return [name, isDiverging(name) ? -1 : 0, 1];
  if (signed || isDiverging(name)) return [name, -top, top];
  return [name, 0, hi];
}

// featviz._style.limits: per-map [vmin[], vmax[]] of `maps`, an array of C arrays of values.
export function limits(maps, scale = "shared", cmap = null) {
  if (scale !== "shared" && scale !== "per-map") throw new Error(`scale must be 'shared' or 'per-map', got ${scale}`);
  const all = [];
  for (const m of maps) for (const v of m) all.push(v);
  const [, lo, hi] = colorScale(all, cmap);
  const count = maps.length;
  if (scale === "shared") return [Array(count).fill(lo), Array(count).fill(hi)];
  const centred = lo < 0;
  const tops = maps.map((m) => {
    let t = 0;
    for (const raw of m) {
      const v = Number.isFinite(raw) ? raw : 0;
      t = Math.max(t, centred ? Math.abs(v) : v);
    }
    return t > 0 ? t : 1;
  });
  return [tops.map((t) => (centred ? -t : 0)), tops];
}

// featviz._style.grid_shape: [rows, cols] for n panels.
export function gridShape(n, maxCols = null, aspect = 2.0) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`n must be a positive integer, got ${n}`);
  if (maxCols !== null) {
    const cols = Math.min(maxCols, n);
    return [Math.ceil(n / cols), cols];
  }
  let best = null;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const spare = rows * cols - n;
    let cost = Math.abs(Math.log2(cols / rows / aspect));
    if (spare) cost += 1.0 + spare / cols;
    const key = [Math.round(cost * 1e9) / 1e9, cols, rows];
    if (best === null || key[0] < best[0] || (key[0] === best[0] && key[1] < best[1])) best = key;
  }
  return [best[2], best[1]];
}
