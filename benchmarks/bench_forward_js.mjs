// The browser engine's forward pass of one image, against a plain loop doing as many
// multiply-adds, in the same Node process and interleaved (these machines are noisy).
//
//   node benchmarks/bench_forward_js.mjs PAYLOAD.json [RUNS]
//
// PAYLOAD.json is NetSpec.to_json() of a network (benchmarks/bench_forward_js.py
// writes the pretrained SimpleCNN's and runs this). The baseline is the best case
// for plain JavaScript: one dot product over two Float32Arrays, repeated until it
// has done the network's multiply-adds, so the ratio is what the convolutions'
// loop structure, padding bounds and pooling cost on top of the arithmetic.
import {readFileSync} from "node:fs";

import {decode, forward, multiplyAdds} from "../featviz/widgets/forward.js";

const [, , path, runsArg] = process.argv;
if (!path) {
  console.error("usage: node benchmarks/bench_forward_js.mjs PAYLOAD.json [RUNS]");
  process.exit(2);
}
const RUNS = Number(runsArg ?? 200);
const net = decode(readFileSync(path, "utf8"));
const macs = multiplyAdds(net);

// Seeded pseudo-random values in [-1, 1): the same input every run.
function values(n, seed) {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) out[i] = ((s = (s * 1103515245 + 12345) % 2147483648) / 2 ** 30) - 1;
  return out;
}

const LENGTH = 4096;
const a = values(LENGTH, 1), b = values(LENGTH, 2);
function baseline() {
  let sum = 0;
  for (let done = 0; done < macs; done += LENGTH) {
    const n = Math.min(LENGTH, macs - done);
    for (let i = 0; i < n; i++) sum += a[i] * b[i];
  }
  return sum;
}

const input = values(net.inputShape.reduce((x, y) => x * y, 1), 3);
const median = (xs) => xs.slice().sort((x, y) => x - y)[xs.length >> 1];
const timed = (fn) => { const t = performance.now(); fn(); return performance.now() - t; };

let sink = 0;
for (let i = 0; i < 20; i++) sink += forward(net, input).logits[0] + baseline();  // warm up
const ours = [], theirs = [];
for (let i = 0; i < RUNS; i++) {
  ours.push(timed(() => { sink += forward(net, input).logits[0]; }));
  theirs.push(timed(() => { sink += baseline(); }));
}
const fwd = median(ours), base = median(theirs);
console.log(`network: ${net.steps.length} steps, ${macs.toLocaleString("en")} multiply-adds`);
console.log(`forward.js, one image        median ${fwd.toFixed(3)} ms over ${RUNS} runs ` +
  `(${(macs / fwd / 1e6).toFixed(2)} G multiply-adds/s)`);
console.log(`plain loop, as many mul-adds median ${base.toFixed(3)} ms`);
console.log(`ratio forward / plain loop: ${(fwd / base).toFixed(2)}` +
  (Number.isFinite(sink) ? "" : " (sink not finite)"));
