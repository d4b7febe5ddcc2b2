// The classical baselines an image-to-image model is shown beside, computed in the browser
// on the same pixels the model gets. They are the evaluation's references
// (gan_keras/tasks/baselines.py), rewritten here because the API does not serve them:
//   super-resolution: bicubic upsampling as tf.image.resize(method="bicubic") does it
//     (Keys' cubic with a = -0.5, half-pixel centres, taps outside the image dropped and the
//     weights renormalised);
//   inpainting: the harmonic (membrane) fill, every hole pixel the mean of its 4 neighbours
//     (neighbours outside the image left out), solved here by over-relaxed Gauss-Seidel.
// Both work on 0..255 values: the evaluation's work on [-1, 1], and the two agree to within
// one level after rounding (tests/gan_keras/serving/test_playground_browser.py checks it).

function keysCubic(x) {
  const a = -0.5;
  x = Math.abs(x);
  if (x >= 2) return 0;
  if (x >= 1) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return ((a + 2) * x - (a + 3)) * x * x + 1;
}

/** For each output index: [[input index, weight], ...] of tf's half-pixel bicubic. */
function cubicTaps(inSize, outSize) {
  const scale = inSize / outSize;
  const taps = [];
  for (let out = 0; out < outSize; out++) {
    const position = (out + 0.5) * scale - 0.5;
    const base = Math.floor(position);
    const delta = position - base;
    const row = [];
    let sum = 0;
    for (let k = -1; k <= 2; k++) {
      const index = base + k;
      if (index < 0 || index >= inSize) continue;
      const weight = keysCubic(k - delta);
      row.push([index, weight]);
      sum += weight;
    }
    taps.push(row.map(([index, weight]) => [index, weight / sum]));
  }
  return taps;
}

/** Bicubic upsampling of [h][w][c] uint8 pixels to [outH][outW][c]. */
export function bicubicUpsample(pixels, height, width, channels, outHeight, outWidth) {
  const rows = cubicTaps(height, outHeight);
  const cols = cubicTaps(width, outWidth);
  const out = new Uint8Array(outHeight * outWidth * channels);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      for (let c = 0; c < channels; c++) {
        let value = 0;
        for (const [iy, wy] of rows[y]) {
          for (const [ix, wx] of cols[x]) value += wy * wx * pixels[(iy * width + ix) * channels + c];
        }
        out[(y * outWidth + x) * channels + c] = Math.min(255, Math.max(0, Math.round(value)));
      }
    }
  }
  return out;
}

/**
 * Harmonic fill of [h][w][c] pixels where `mask` ([h][w], >= 128 = hole) marks the hole; the
 * known pixels stay as they are. An image with no known pixel is filled mid-grey.
 */
export function harmonicFill(pixels, mask, height, width, channels) {
  const out = new Float64Array(pixels.length);
  const hole = [];
  let known = 0;
  for (let i = 0; i < height * width; i++) {
    if (mask[i] >= 128) hole.push(i);
    else known++;
    for (let c = 0; c < channels; c++) out[i * channels + c] = pixels[i * channels + c];
  }
  if (known === 0) return new Uint8Array(pixels.length).fill(128);
  const neighbours = hole.map((i) => {
    const [y, x] = [Math.floor(i / width), i % width];
    const list = [];
    if (y > 0) list.push(i - width);
    if (y < height - 1) list.push(i + width);
    if (x > 0) list.push(i - 1);
    if (x < width - 1) list.push(i + 1);
    return list;
  });
  for (const i of hole) for (let c = 0; c < channels; c++) out[i * channels + c] = 127.5;
  // Successive over-relaxation with the near-optimal factor for a grid of this size.
  const omega = 2 / (1 + Math.sin(Math.PI / (Math.max(height, width) + 1)));
  const maxIterations = 50 * (height + width) + 1000;
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    let change = 0;
    for (let h = 0; h < hole.length; h++) {
      const i = hole[h];
      const list = neighbours[h];
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (const j of list) sum += out[j * channels + c];
        const next = out[i * channels + c] + omega * (sum / list.length - out[i * channels + c]);
        change = Math.max(change, Math.abs(next - out[i * channels + c]));
        out[i * channels + c] = next;
      }
    }
    if (change < 1e-6) break;
  }
  return Uint8Array.from(out, (v) => Math.min(255, Math.max(0, Math.round(v))));
}

// Python's round(): halves go to the even neighbour.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A mask [h][w] (255 = hole) of the training's centred hole of `fraction` of the area
 * (gan_keras.tasks.conditions.make_mask with hole="center"). */
export function centreHole(height, width, fraction) {
  const boxH = Math.min(height, Math.max(1, roundHalfEven(Math.sqrt(fraction) * height)));
  const boxW = Math.min(width, Math.max(1, roundHalfEven((fraction * height * width) / boxH)));
  const [top, left] = [Math.floor((height - boxH) / 2), Math.floor((width - boxW) / 2)];
  const mask = new Uint8Array(height * width);
  for (let y = top; y < top + boxH; y++) mask.fill(255, y * width + left, y * width + left + boxW);
  return mask;
}
