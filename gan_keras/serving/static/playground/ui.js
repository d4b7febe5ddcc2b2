// Small DOM helpers shared by the views. Nothing here writes HTML from strings: text goes in
// as text (textContent), so no answer from the server can inject markup.

/** document.createElement with properties and children (strings become text nodes). */
export function el(tag, properties = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(properties)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "attributes") for (const [name, v] of Object.entries(value)) node.setAttribute(name, v);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

export function $(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

// The messages on show, by what they are about ("samples", "walk", ...): an action that
// succeeds clears its own message only, never another's.
const messages = new Map();

/** Shows `message` about `source` in the page's alert box ("" takes it away). */
export function showError(message, source = "page") {
  messages.delete(source);
  if (message) messages.set(source, message);
  const box = $("error");
  box.textContent = [...messages.values()].join("\n");
  box.hidden = messages.size === 0;
}

/** Runs `fn`: its error (an ApiError from the server, or any other) is shown as `source`'s
 * message, not thrown; its success clears that message. */
export async function reporting(fn, source) {
  try {
    const result = await fn();
    showError("", source);
    return result;
  } catch (error) {
    if (error.name === "AbortError") return undefined;
    showError(error.message || String(error), source);
    return undefined;
  }
}

/** The integer factor that shows a `size`-pixel image at about `target` CSS pixels. */
export function scaleFor(size, target) {
  return Math.max(1, Math.floor(target / size));
}

/** Sizes an <img> or <canvas> of width x height pixels at an integer multiple (shown with
 * nearest-neighbour scaling by the stylesheet's image-rendering: pixelated). */
export function setDisplaySize(node, width, height, target) {
  const scale = scaleFor(Math.max(width, height), target);
  node.style.width = `${width * scale}px`;
  node.style.height = `${height * scale}px`;
}

/** After the browser has painted what is on screen now (the frame after the next one). */
export function afterPaint() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

const objectUrls = new WeakMap(); // <img> -> the blob: URL it shows (and its download link)

/** An <img> inside a frame that can hide its border (see showBlob's `crop`). */
export function framedImage() {
  const img = el("img", { alt: "", hidden: true });
  return { img, frame: el("span", { className: "frame" }, img) };
}

/**
 * Puts `blob` in `img` (freeing the blob: URL it showed before) and resolves once it is
 * decoded; sizes it at about `target` CSS pixels, and points `download` (an <a>, optional)
 * at the same bytes. `source` (the API request) is kept in data-source. `crop` pixels of
 * each edge are hidden by the img's frame (framedImage): the server's one-image grids carry
 * a 2-pixel padding, which the download keeps, with the image's provenance.
 */
export async function showBlob(img, blob, { alt, target = 256, download = null, filename = "image.png", source = "", crop = 0 }) {
  const url = URL.createObjectURL(blob);
  const previous = objectUrls.get(img);
  img.src = url; // the element keeps showing the old image until this one has loaded
  try {
    await img.decode();
  } catch {
    URL.revokeObjectURL(url);
    if (previous) img.src = previous;
    else img.removeAttribute("src");
    throw new Error(`the browser could not decode ${source || "an image"}`);
  }
  objectUrls.set(img, url);
  img.alt = alt;
  img.dataset.source = source;
  const [width, height] = [img.naturalWidth - 2 * crop, img.naturalHeight - 2 * crop];
  const scale = scaleFor(Math.max(width, height), target);
  img.style.width = `${img.naturalWidth * scale}px`;
  img.style.height = `${img.naturalHeight * scale}px`;
  img.style.margin = `${-crop * scale}px`;
  if (img.parentElement && img.parentElement.classList.contains("frame")) {
    img.parentElement.style.width = `${width * scale}px`;
    img.parentElement.style.height = `${height * scale}px`;
  }
  img.hidden = false;
  const container = img.closest("figure");
  if (container) container.hidden = false;
  if (download) {
    download.href = url;
    download.download = filename;
    download.hidden = false;
  }
  if (previous) URL.revokeObjectURL(previous);
  return { width: img.naturalWidth, height: img.naturalHeight };
}

/**
 * Draws `blob` (an image) on `canvas`, leaving out `crop` pixels at each edge, and sizes it at
 * about `target` CSS pixels; `label` is its text alternative (role="img"). For the grid's
 * tiles, redrawn on every slider step: an ImageBitmap on a canvas costs the browser about a
 * third of what a blob: URL decoded by an <img> does (benchmarks/playground_latency.py).
 */
export async function drawBlob(canvas, blob, { label, target = 128, crop = 0, source = "" }) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    throw new Error(`the browser could not decode ${source || "an image"}`);
  }
  const [width, height] = [bitmap.width - 2 * crop, bitmap.height - 2 * crop];
  if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
  canvas.getContext("2d").drawImage(bitmap, crop, crop, width, height, 0, 0, width, height);
  bitmap.close();
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  canvas.dataset.source = source;
  setDisplaySize(canvas, width, height, target);
}

/** A <figure> with an <img>, a caption and a download link; the figure stays hidden until
 * its first image unless `hidden` is false (then the caption shows alone). */
export function figure(caption, { hidden = true } = {}) {
  const { img, frame } = framedImage();
  const text = el("figcaption", {}, caption);
  const download = el("a", { className: "download", textContent: "Download", hidden: true });
  const node = el("figure", { hidden }, frame, text, download);
  return { node, img, caption: text, download };
}

/** Formats a number for captions: at most `digits` decimals, no trailing zeros. */
export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return String(Number(Number(value).toFixed(digits)));
}
