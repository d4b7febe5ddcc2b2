// Pixels in the browser: PNG encoding of 1-, 2-, 3- and 4-channel images, reading a PNG's
// header, and turning a user's image file into a PNG of the exact shape a model takes.
//
// Why: the API takes PNGs of the model's exact [H, W, C] (nothing is resized or converted on
// the server), and a canvas only ever encodes RGBA. So the page encodes the PNGs it sends
// itself (zlib through the browser's CompressionStream: no library), and sends a file that
// already has the right shape byte for byte.

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
// PNG colour types by channel count: grey, grey + alpha, RGB, RGBA.
const COLOR_TYPES = { 1: 0, 2: 4, 3: 2, 4: 6 };
const CHANNELS_OF_COLOR_TYPE = { 0: 1, 4: 2, 2: 3, 6: 4 };

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function zlib(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A PNG Blob of `pixels` (Uint8Array, row-major [height][width][channels]). */
export async function encodePng(pixels, width, height, channels) {
  if (!(channels in COLOR_TYPES)) throw new Error(`cannot encode ${channels} channels as PNG`);
  const stride = width * channels;
  const raw = new Uint8Array(height * (stride + 1)); // filter byte 0 (none) per row
  for (let y = 0; y < height; y++) {
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, COLOR_TYPES[channels], 0, 0, 0], 8);
  const parts = [
    new Uint8Array(PNG_SIGNATURE),
    chunk("IHDR", header),
    chunk("IDAT", await zlib(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  return new Blob(parts, { type: "image/png" });
}

/** {width, height, bitDepth, channels} from a PNG's IHDR, or null if `bytes` is no PNG. */
export function pngHeader(bytes) {
  if (bytes.length < 33 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    width: view.getUint32(16),
    height: view.getUint32(20),
    bitDepth: bytes[24],
    channels: CHANNELS_OF_COLOR_TYPE[bytes[25]] ?? null, // null: palette
  };
}

/** RGBA ImageData of [height][width][channels] pixels (grey is spread to R, G and B). */
export function toImageData(pixels, width, height, channels) {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < width * height; i++, j += channels) {
    const grey = channels <= 2;
    rgba[4 * i] = pixels[j];
    rgba[4 * i + 1] = grey ? pixels[j] : pixels[j + 1];
    rgba[4 * i + 2] = grey ? pixels[j] : pixels[j + 2];
    rgba[4 * i + 3] = channels === 2 ? pixels[j + 1] : channels === 4 ? pixels[j + 3] : 255;
  }
  return new ImageData(rgba, width, height);
}

/** [height][width][channels] pixels of RGBA data; alpha is composited over white when the
 * target has none, and grey is ITU-R 601 luma (what PIL's convert("L") computes). */
function fromRgba(rgba, width, height, channels) {
  const out = new Uint8Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    let [r, g, b, a] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]];
    if (channels === 1 || channels === 3) {
      r = Math.round((r * a + 255 * (255 - a)) / 255);
      g = Math.round((g * a + 255 * (255 - a)) / 255);
      b = Math.round((b * a + 255 * (255 - a)) / 255);
    }
    const grey = r === g && g === b ? r : Math.round((r * 299 + g * 587 + b * 114) / 1000);
    const values = { 1: [grey], 2: [grey, a], 3: [r, g, b], 4: [r, g, b, a] }[channels];
    out.set(values, i * channels);
  }
  return out;
}

/** Pixels [h][w][c] from a nested [h][w][c] array (a :predict answer's image). */
export function fromNested(image) {
  const [height, width, channels] = [image.length, image[0].length, image[0][0].length];
  const out = new Uint8Array(height * width * channels);
  let k = 0;
  for (const row of image) for (const pixel of row) for (const v of pixel) out[k++] = v;
  return { pixels: out, width, height, channels };
}

function drawRgba(bitmap, width, height, { cover }) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  if (cover) {
    // Centre-cropped to the target's aspect ratio, then resized smoothly.
    const scale = Math.max(width / bitmap.width, height / bitmap.height);
    const [sw, sh] = [width / scale, height / scale];
    context.imageSmoothingQuality = "high";
    context.drawImage(bitmap, (bitmap.width - sw) / 2, (bitmap.height - sh) / 2, sw, sh, 0, 0, width, height);
  } else {
    context.drawImage(bitmap, 0, 0);
  }
  return context.getImageData(0, 0, width, height).data;
}

function describe([height, width, channels]) {
  const kind = { 1: "grayscale", 2: "grayscale + alpha", 3: "RGB", 4: "RGBA" }[channels];
  return `${width}×${height} ${kind}`;
}

/**
 * A user's image file as the PNG a model takes: {pixels, png (Blob to send), note}.
 *
 * A PNG of exactly `shape` ([H, W, C]) is sent as it is; anything else the browser can decode
 * is centre-cropped, resized and converted here, and `note` says so. Files over `maxBytes`
 * (the server's limit) are refused before anything is read.
 */
export async function imageFileAs(file, shape, maxBytes) {
  if (file.size > maxBytes) {
    throw new Error(`${file.name} is ${file.size} bytes: over this server's limit of ${maxBytes} bytes`);
  }
  const [height, width, channels] = shape;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const header = pngHeader(bytes);
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]), {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
    });
  } catch {
    throw new Error(`${file.name} is not an image this browser can read`);
  }
  const exact =
    header !== null &&
    header.bitDepth === 8 &&
    header.channels === channels &&
    header.width === width &&
    header.height === height;
  const rgba = drawRgba(bitmap, width, height, { cover: !exact });
  const pixels = fromRgba(rgba, width, height, channels);
  if (exact) return { pixels, png: new Blob([bytes], { type: "image/png" }), note: "" };
  const png = await encodePng(pixels, width, height, channels);
  const note = `Converted in your browser from ${bitmap.width}×${bitmap.height} to ${describe(shape)}.`;
  return { pixels, png, note };
}

/** A made-up test picture of `shape` (a lit disc on a gradient), for trying a model. */
export async function exampleImage(shape) {
  const [height, width, channels] = shape;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const gradient = context.createLinearGradient(0, 0, width, height);
  gradient.addColorStop(0, "#203060");
  gradient.addColorStop(1, "#e0c080");
  context.fillStyle = gradient;
  context.fillRect(0, 0, width, height);
  context.fillStyle = "#f4f4f4";
  context.beginPath();
  context.arc(width * 0.45, height * 0.5, Math.min(width, height) * 0.28, 0, 2 * Math.PI);
  context.fill();
  const pixels = fromRgba(context.getImageData(0, 0, width, height).data, width, height, channels);
  return { pixels, png: await encodePng(pixels, width, height, channels), note: "A made-up example picture." };
}
