// The browser's image operations on one sketchpad drawing, against a plain loop that
// reads the drawing once, in the same Node process and interleaved (these machines are
// noisy).
//
//   node benchmarks/bench_imageops_js.mjs [RUNS]
//
// The drawing is a "7" on the 140x140 pad, drawn here as the sketchpad's pen draws it
// (stroke_pixels: brush 12, soft edges), one byte per pixel. The baseline turns those
// bytes into floats, the least any mnistStyle must do, so the ratio is what cropping,
// the antialiased resize, the centre of mass and the paste cost on top of reading.
import {mnistStyle, perturb} from "../featviz/widgets/imageops.js";

const RUNS = Number(process.argv[2] ?? 200);
const SIDE = 140, BRUSH = 12;

// stroke_pixels([(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)]) as bytes
function seven() {
  const points = [[0.25, 0.2], [0.75, 0.2], [0.4, 0.85]].map(([x, y]) => [x * SIDE, y * SIDE]);
  const ink = new Uint8Array(SIDE * SIDE);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      let dist = Infinity;
      for (let k = 0; k + 1 < points.length; k++) {
        const [ax, ay] = points[k], [bx, by] = points[k + 1];
        const px = x + 0.5 - ax, py = y + 0.5 - ay, dx = bx - ax, dy = by - ay;
        const t = Math.min(Math.max((px * dx + py * dy) / (dx * dx + dy * dy), 0), 1);
        dist = Math.min(dist, Math.hypot(px - t * dx, py - t * dy));
      }
      ink[y * SIDE + x] = Math.round(255 * Math.min(Math.max(BRUSH / 2 + 0.5 - dist, 0), 1));
    }
  }
  return ink;
}

const drawing = seven();
function baseline() {
  const out = new Float32Array(drawing.length);
  for (let i = 0; i < drawing.length; i++) out[i] = drawing[i] / 255;
  return out[drawing.length >> 1];
}

const median = (xs) => xs.slice().sort((x, y) => x - y)[xs.length >> 1];
const timed = (fn) => { const t = performance.now(); fn(); return performance.now() - t; };
const field = Float32Array.from({length: 784}, (_, i) => Math.sin(i));
const settings = {shift_x: 2, shift_y: -1, rotate: 30, scale: 1.2, erase: 6, noise: 0.3};

let sink = 0;
for (let i = 0; i < 50; i++) sink += mnistStyle(drawing, SIDE, SIDE)[400] + baseline();  // warm up
const style = [], reads = [], moves = [];
for (let i = 0; i < RUNS; i++) {
  let x;
  style.push(timed(() => { x = mnistStyle(drawing, SIDE, SIDE); }));
  reads.push(timed(() => { sink += baseline(); }));
  moves.push(timed(() => { sink += perturb(x, settings, field)[400]; }));
}
const ms = median(style), base = median(reads);
console.log(`mnistStyle, 140x140 drawing   median ${(1e3 * ms).toFixed(1)} us over ${RUNS} runs`);
console.log(`perturb, 28x28, every slider  median ${(1e3 * median(moves)).toFixed(1)} us`);
console.log(`plain loop, bytes to floats   median ${(1e3 * base).toFixed(1)} us`);
console.log(`ratio mnistStyle / plain loop: ${(ms / base).toFixed(2)}` +
  (Number.isFinite(sink) ? "" : " (sink not finite)"));
