// Reading what the kernel sends: bytes, float32 blocks and quantised maps.
//
// featviz/widgets/_payload.py writes maps as one uint8 per value with, per map, an
// offset and a scale (value = offset + scale * q). The explorer's payload
// (explorer_payload.py) lays every layer end to end, its per-map numbers as float32
// blocks inside the bytes; the sketchpad's (sketchpad_reader.maps_message) sends one
// layer with its numbers in JSON. Both widgets read them here; tests/js/codec.test.mjs
// holds the decoded values to Python's dequantize.

// Bytes from what a binary trait arrives as (anywidget hands DataView over).
export function bytesOf(v) {
  if (!v) return new Uint8Array(0);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return Uint8Array.from(v);
  return new Uint8Array(0);
}

// Bytes from what must carry them, base64 text included (a static page embeds its
// binary data so): an error names `what` for anything else.
export function bytesFrom(v, what) {
  if (typeof v === "string") {
    const text = atob(v);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`${what} must be bytes or base64 text, got ${typeof v}`);
}

// n little-endian float32 values starting at byte `start` of `bytes`.
export function float32At(bytes, start, n) {
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, 4 * n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

// The explorer's layers with their per-map numbers read: offset, scale, own limits,
// and the filters' offset and scale (explorer_payload.build_payload's layout).
export function explorerLayers(meta, data) {
  return (meta.layers || []).map((L) => {
    const C = L.shape[0], f = float32At(data, L.floats, 4 * C);
    const out = { ...L, offset: f.subarray(0, C), scale: f.subarray(C, 2 * C),
                  per_map: [f.subarray(2 * C, 3 * C), f.subarray(3 * C, 4 * C)] };
    if (L.kernel) {
      const n = L.kernel.dims[0], k = float32At(data, L.kernel.floats, 2 * n);
      out.kernel = { ...L.kernel, offset: k.subarray(0, n), scale: k.subarray(n, 2 * n) };
    }
    return out;
  });
}

// Value i (row-major) of map m of maps (C, h, w) stored from byte `start` of `data`.
export function mapValue(data, start, offset, scale, [, h, w], m, i) {
  return offset[m] + scale[m] * data[start + m * h * w + i];
}

// Every value of the maps, dequantised: Float32Array (C * h * w).
export function dequantize(data, start, offset, scale, shape) {
  const [C, h, w] = shape, n = h * w, out = new Float32Array(C * n);
  for (let m = 0; m < C; m++) for (let i = 0; i < n; i++) out[m * n + i] = offset[m] + scale[m] * data[start + m * n + i];
  return out;
}
