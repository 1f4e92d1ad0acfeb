// The image operations the browser does before a forward pass, as featviz does them
// in Python (featviz/perturbation.py, F.interpolate):
//
//   const x = mnistStyle(ink, 140, 140);        // drawing -> Float32Array(784), normalised
//   const y = perturb(x, {shift_x: 2, rotate: 15, noise: 0.3}, unitNoise);
//   const z = resize(x, 28, 28, 64, 64);         // F.interpolate(bilinear, align_corners=False)
//
// Python is the reference: tests/js/imageops.test.mjs holds every function to it
// (max abs diff <= 1e-4). Pure functions on flat typed arrays (row-major, (C, H, W));
// no DOM or Node API.

export const MNIST_MEAN = 0.1307;  // featviz/data.py
export const MNIST_STD = 0.3081;
const MNIST_BOX = 20;   // digits were scaled to fit a 20x20 box ...
const MNIST_SIZE = 28;  // ... then centred by centre of mass in a 28x28 field
const INK = Math.fround(1e-3);  // above this a pixel is ink (compared in float32, as torch does)
// The centre of mass is rounded as Python's round() does (halves to even). A centre this
// close to a half pixel (a symmetric drawing) counts as the half: there PyTorch's float32
// sums land on either side by chance, and differently on another CPU.
const TIE = 1e-4;

const f32 = Math.fround;
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

// Python's round(): the nearest integer, halves to the even one; `tie` widens "half".
function roundHalfEven(x, tie = 0) {
  const floor = Math.floor(x);
  const d = x - floor - 0.5;
  if (Math.abs(d) <= tie) return floor % 2 === 0 ? floor : floor + 1;
  return d < 0 ? floor : floor + 1;
}

// ------------------------------------------------------------------ resizing

// One axis of F.interpolate(mode="bilinear", align_corners=False): for each output
// index, the first input index, the number of taps and their weights. The weights are
// float32, computed step by step as PyTorch does for a float tensor
// (UpSampleKernel.cpp: compute_indices_weights, _compute_indices_min_size_weights_aa).
function axisTaps(inSize, outSize, antialias) {
  const scale = f32(inSize / outSize);
  if (!antialias || scale < 1) {
    // plain bilinear, also what antialias does when enlarging: two taps
    const taps = {start: new Int32Array(outSize), count: new Int32Array(outSize),
      weights: new Float32Array(outSize * 2), stride: 2};
    for (let i = 0; i < outSize; i++) {
      let lambda = 0, index = i;
      if (inSize !== outSize) {
        const real = Math.max(f32(f32(scale * (i + 0.5)) - 0.5), 0);
        index = Math.trunc(real);
        lambda = clamp(f32(real - index), 0, 1);
      }
      // at the last input pixel PyTorch reads it twice; its two weights add up
      const last = index >= inSize - 1;
      taps.start[i] = index;
      taps.count[i] = last ? 1 : 2;
      taps.weights[2 * i] = last ? f32(1 - lambda) + lambda : f32(1 - lambda);
      taps.weights[2 * i + 1] = last ? 0 : lambda;
    }
    return taps;
  }
  // antialias when shrinking: a triangle filter widened by the scale, weights normalised
  const support = scale;  // (interp_size / 2) * scale, interp_size = 2
  const invscale = f32(1 / scale);
  const stride = Math.ceil(support) * 2 + 1;
  const taps = {start: new Int32Array(outSize), count: new Int32Array(outSize),
    weights: new Float32Array(outSize * stride), stride};
  for (let i = 0; i < outSize; i++) {
    const center = f32(scale * (i + 0.5));
    const xmin = Math.max(Math.trunc(f32(center - support) + 0.5), 0);
    const xsize = clamp(Math.min(Math.trunc(f32(center + support) + 0.5), inSize) - xmin,
      0, stride);
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const x = Math.abs(f32((f32(f32(j + xmin) - center) + 0.5) * invscale));
      const w = x < 1 ? f32(1 - x) : 0;
      taps.weights[i * stride + j] = w;
      total = f32(total + w);
    }
    if (total !== 0) {
      for (let j = 0; j < xsize; j++) {
        taps.weights[i * stride + j] = f32(taps.weights[i * stride + j] / total);
      }
    }
    taps.start[i] = xmin;
    taps.count[i] = xsize;
  }
  return taps;
}

// Resample `lines` lines of `src` along one axis into `dst` with `taps`: values along a
// line are `inStep` (`outStep`) apart, lines `inLine` (`outLine`) apart.
function resampleAxis(src, dst, lines, inStep, inLine, outStep, outLine, taps, outSize) {
  const {start, count, weights, stride} = taps;
  for (let l = 0; l < lines; l++) {
    for (let i = 0; i < outSize; i++) {
      let sum = 0;
      const at = l * inLine + start[i] * inStep, w = i * stride;
      for (let j = 0; j < count[i]; j++) sum += weights[w + j] * src[at + j * inStep];
      dst[l * outLine + i * outStep] = sum;
    }
  }
}

/**
 * F.interpolate(x, size=(outHeight, outWidth), mode="bilinear", align_corners=False,
 * antialias=antialias) of one (height, width) plane, or of `channels` planes in a row.
 *
 * @param {ArrayLike<number>} src  height * width values (times channels), row-major
 * @returns {Float32Array} outHeight * outWidth values (times channels)
 */
export function resize(src, height, width, outHeight, outWidth,
  {antialias = false, channels = 1} = {}) {
  checkLength(src, channels * height * width, "resize", "channels * height * width");
  const out = new Float32Array(channels * outHeight * outWidth);
  // width first, then height, as PyTorch's separable kernel does. (PyTorch 2.x on the CPU
  // gets antialias wrong for an output one pixel wide: every row comes out as the first.
  // This does the filter's arithmetic there too; the tests know the case.)
  const across = axisTaps(width, outWidth, antialias);
  const down = axisTaps(height, outHeight, antialias);
  const mid = new Float64Array(height * outWidth);
  for (let c = 0; c < channels; c++) {
    const plane = src.subarray ? src.subarray(c * height * width, (c + 1) * height * width)
      : Array.prototype.slice.call(src, c * height * width, (c + 1) * height * width);
    resampleAxis(plane, mid, height, 1, width, 1, outWidth, across, outWidth);
    const target = out.subarray(c * outHeight * outWidth, (c + 1) * outHeight * outWidth);
    resampleAxis(mid, target, outWidth, outWidth, 1, outWidth, 1, down, outHeight);
  }
  return out;
}

function checkLength(values, expected, what, formula) {
  if (!values || values.length !== expected) {
    throw new RangeError(`${what}: got ${values ? values.length : values} values, expected ` +
      `${formula} = ${expected}`);
  }
}

// ------------------------------------------------------------------ MNIST style

const BYTE = Float32Array.from({length: 256}, (_, b) => b / 255);  // float32(b) / 255

// The drawing as float32 values in [0, 1]: bytes (ink 255, as the sketchpad holds it)
// become byte / 255, as SketchpadState.pixels does; floats are checked and clamped.
function drawingOf(pixels, count) {
  checkLength(pixels, count, "mnistStyle", "height * width");
  const t = new Float32Array(count);
  if (pixels instanceof Uint8Array || pixels instanceof Uint8ClampedArray) {
    for (let i = 0; i < count; i++) t[i] = BYTE[pixels[i]];
    return t;
  }
  for (let i = 0; i < count; i++) {
    const v = pixels[i];
    if (!(v >= -1e-3 && v <= 1 + 1e-3)) {
      throw new RangeError(`mnistStyle: pixels must lie in [0, 1] (paper 0, ink 1) or be ` +
        `bytes (ink 255), got ${v} at index ${i}`);
    }
    t[i] = clamp(v, 0, 1);
  }
  return t;
}

// The box around the ink: {top, bottom, left, right} (inclusive), or null when none.
function inkBox(t, height, width) {
  let top = -1, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (t[y * width + x] > INK) {
        if (top < 0) top = y;
        bottom = y;
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  return top < 0 ? null : {top, bottom, left, right};
}

/**
 * A drawing made into the course model's input the way the MNIST digits were made:
 * featviz.mnist_style. Crop to the ink, scale it into a 20x20 box keeping the aspect
 * ratio (antialiased when shrinking), paste it into 28x28 with its centre of mass at
 * (14, 14) (moved just enough to stay whole), normalise with MNIST's mean and std.
 *
 * @param {Uint8Array|Float32Array|ArrayLike<number>} pixels  height * width values,
 *   row-major: bytes with ink 255, or numbers in [0, 1] with ink 1
 * @returns {Float32Array} 784 values (1, 28, 28), normalised
 */
export function mnistStyle(pixels, height, width) {
  const t = drawingOf(pixels, height * width);
  const field = new Float64Array(MNIST_SIZE * MNIST_SIZE);
  const box = inkBox(t, height, width);
  if (box) {
    const h = box.bottom - box.top + 1, w = box.right - box.left + 1;
    const crop = new Float32Array(h * w);
    for (let y = 0; y < h; y++) {
      const at = (box.top + y) * width + box.left;
      crop.set(t.subarray(at, at + w), y * w);
    }
    const f = MNIST_BOX / Math.max(h, w);
    const dh = Math.max(1, roundHalfEven(h * f)), dw = Math.max(1, roundHalfEven(w * f));
    const digit = resize(crop, h, w, dh, dw, {antialias: f < 1});
    let mass = 0, my = 0, mx = 0;
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        const v = digit[y * dw + x] = clamp(digit[y * dw + x], 0, 1);
        mass += v; my += v * y; mx += v * x;
      }
    }
    const cy = mass > 0 ? my / mass : (dh - 1) / 2, cx = mass > 0 ? mx / mass : (dw - 1) / 2;
    const top = clamp(roundHalfEven(MNIST_SIZE / 2 - cy, TIE), 0, MNIST_SIZE - dh);
    const left = clamp(roundHalfEven(MNIST_SIZE / 2 - cx, TIE), 0, MNIST_SIZE - dw);
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) field[(top + y) * MNIST_SIZE + left + x] = digit[y * dw + x];
    }
  }
  const out = new Float32Array(MNIST_SIZE * MNIST_SIZE);
  for (let i = 0; i < out.length; i++) out[i] = (field[i] - MNIST_MEAN) / MNIST_STD;
  return out;
}

// ------------------------------------------------------------------ perturbation

// The explorer's sliders that leave the input as it is (explorer_controls.NO_CHANGE).
export const NO_CHANGE = Object.freeze(
  {shift_x: 0, shift_y: 0, rotate: 0, scale: 1, erase: 0, noise: 0});

// The erased box [x, y, w, h]: the explorer's `erase` is the side of a square at the
// centre (explorer_data.Perturbation.apply); a box [x, y, w, h] is taken as it is.
function eraseBox(erase, height, width) {
  if (Array.isArray(erase)) {
    const box = erase.map((v) => roundHalfEven(v));
    if (box.length !== 4 || !(box[2] >= 0 && box[3] >= 0)) {
      throw new RangeError(`perturb: erase must be a side or a box [x, y, w, h] with w, h >= 0, ` +
        `got ${JSON.stringify(erase)}`);
    }
    return box;
  }
  const side = Math.trunc(erase || 0);
  return side > 0 ? [Math.floor((width - side) / 2), Math.floor((height - side) / 2), side, side]
    : null;
}

// Bilinear sample of `plane` at (sx, sy) in pixel coordinates (centres at integers),
// zero outside: grid_sample(mode="bilinear", padding_mode="zeros").
function sample(plane, height, width, sx, sy) {
  const x0 = Math.floor(sx), y0 = Math.floor(sy);
  const ax = sx - x0, ay = sy - y0;
  let sum = 0;
  for (const [y, wy] of [[y0, 1 - ay], [y0 + 1, ay]]) {
    if (y < 0 || y >= height || wy === 0) continue;
    for (const [x, wx] of [[x0, 1 - ax], [x0 + 1, ax]]) {
      if (x >= 0 && x < width) sum += wy * wx * plane[y * width + x];
    }
  }
  return sum;
}

/**
 * featviz.perturb of one image as the explorer asks for it (explorer_data.Perturbation):
 * rotate (degrees, counter-clockwise on screen) and scale about the centre, then shift
 * (pixels, x right, y down), then erase, then add noise. The background (what moves in
 * and what fills the erased box) is each channel's minimum.
 *
 * @param {ArrayLike<number>} image  (C, H, W) values, row-major, as the model sees them
 * @param {{shift_x?, shift_y?, rotate?, scale?, erase?, noise?}} settings  the sliders;
 *   `erase`: the side of a square at the centre, or a box [x, y, w, h]
 * @param {ArrayLike<number>|null} noiseField  unit Gaussian noise of the image's size, as
 *   Python draws it (torch.randn(shape, generator=torch.Generator().manual_seed(seed))):
 *   needed when settings.noise > 0; the result adds noise * noiseField
 * @param {number[]} shape  [C, H, W], default [1, 28, 28]
 * @returns {Float32Array} the perturbed image, (C, H, W)
 */
export function perturb(image, settings = {}, noiseField = null, shape = [1, 28, 28]) {
  const [channels, height, width] = shape;
  const size = height * width;
  checkLength(image, channels * size, "perturb", "C * H * W");
  const s = {};
  for (const key of Object.keys(NO_CHANGE)) s[key] = settings[key] ?? NO_CHANGE[key];
  if (!(s.scale > 0)) throw new RangeError(`perturb: scale must be > 0, got ${s.scale}`);
  if (!(s.noise >= 0)) throw new RangeError(`perturb: noise must be >= 0, got ${s.noise}`);
  if (s.noise > 0) checkLength(noiseField, channels * size, "perturb: noiseField", "C * H * W");
  const out = new Float32Array(channels * size);
  const fill = new Float64Array(channels).fill(Infinity);  // the background: each channel's min
  for (let c = 0; c < channels; c++) {
    for (let i = c * size; i < (c + 1) * size; i++) fill[c] = Math.min(fill[c], image[i]);
  }

  const dx = s.shift_x, dy = s.shift_y;
  const a = (s.rotate * Math.PI) / 180, cos = Math.cos(a), sin = Math.sin(a);
  const whole = s.rotate % 360 === 0 && s.scale === 1 && Number.isInteger(dx) &&
    Number.isInteger(dy);
  for (let c = 0; c < channels; c++) {
    const plane = new Float64Array(size);
    for (let i = 0; i < size; i++) plane[i] = image[c * size + i] - fill[c];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let v;
        if (whole) {  // whole pixels move exactly: out[y, x] = in[y - dy, x - dx]
          const sx = x - dx, sy = y - dy;
          v = sx >= 0 && sx < width && sy >= 0 && sy < height ? plane[sy * width + sx] : 0;
        } else {
          // output pixel p (from the centre) comes from input M^-1 (p - t), M = scale R(a)
          const px = x + 0.5 - width / 2 - dx, py = y + 0.5 - height / 2 - dy;
          const sx = (cos * px - sin * py) / s.scale + width / 2 - 0.5;
          const sy = (sin * px + cos * py) / s.scale + height / 2 - 0.5;
          v = sample(plane, height, width, sx, sy);
        }
        out[c * size + y * width + x] = v + fill[c];
      }
    }
  }
  const box = eraseBox(s.erase, height, width);
  if (box) {
    const [bx, by, bw, bh] = box;
    for (let c = 0; c < channels; c++) {
      for (let y = Math.max(by, 0); y < Math.min(Math.max(by + bh, 0), height); y++) {
        for (let x = Math.max(bx, 0); x < Math.min(Math.max(bx + bw, 0), width); x++) {
          out[c * size + y * width + x] = fill[c];
        }
      }
    }
  }
  if (s.noise > 0) {
    for (let i = 0; i < out.length; i++) out[i] += s.noise * noiseField[i];
  }
  return out;
}
