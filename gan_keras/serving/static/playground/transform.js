// An image-to-image model's view (:transform): the user's image (or a made-up example), a
// mask drawn on a canvas for inpainting, and the model's output beside the classical baseline
// the evaluation compares it with (baselines.js; translation has none).

import { $, setDisplaySize, reporting, showBlob, showError } from "./ui.js";
import { bicubicUpsample, centreHole, harmonicFill } from "./baselines.js";
import { encodePng, exampleImage, imageFileAs, toImageData } from "./png.js";

const TARGET = 256;
const HELP = {
  super_resolution: "Give a small image: the model upscales it. Beside it: bicubic upsampling of the same pixels.",
  inpainting: "Give an image and draw the hole on it (or use the training's hole): the model fills it. Beside it: the harmonic fill of the same hole.",
  translation: "Give a condition picture (edges or grayscale, as the model was trained on): the model draws the image. Translation has no classical baseline.",
};

export class TransformView {
  constructor(model) {
    this.model = model;
    this.task = model.card.task;
    this.limits = model.card.limits;
    this.inputs = this.limits.transform_inputs || {};
    this.outputShape = (model.card.model_info || {}).image_shape;
    this.image = null; // {pixels, png, note} as sent
    this.mask = null; // Uint8Array [h * w], 255 = hole
    this.drawing = null; // the last mask pixel of a stroke in progress
    this.running = null;
    this.again = false;
  }

  start() {
    const shape = this.inputs.image;
    $("transform").hidden = false;
    $("transform-title").textContent = `Image to image: ${this.task.replace("_", "-")}`;
    const wants = shape ? `a ${shape[1]}×${shape[0]} PNG with ${shape[2]} channel(s)` : "a PNG";
    $("transform-help").textContent =
      `${HELP[this.task] || ""} The model takes ${wants}; other images are converted in your ` +
      `browser. Requests are limited to ${this.limits.max_transform_body_bytes} bytes.`;
    if (!shape) {
      showError("This export does not declare its input shape (model_info.json's inputs), so the page cannot prepare images for it.");
      return;
    }
    if (this.task === "translation") $("baseline-figure").hidden = true;
    $("transform-file").addEventListener("change", () => {
      const file = $("transform-file").files[0];
      if (file) reporting(async () => this.useImage(await imageFileAs(file, shape, this.model.maxUpload)), "image");
    });
    $("transform-example").addEventListener("click", () => reporting(async () => this.useImage(await exampleImage(shape)), "image"));
    $("transform-run").addEventListener("click", () => this.run());
    if (this.inputs.mask) this.setUpMask();
    // Something to look at straight away; the user's own image replaces it.
    return reporting(async () => this.useImage(await exampleImage(shape)), "image");
  }

  setUpMask() {
    const [height, width] = this.inputs.mask;
    const canvas = $("mask-canvas");
    $("mask-tools").hidden = false;
    canvas.width = width;
    canvas.height = height;
    this.mask = centreHole(height, width, this.holeFraction());
    $("mask-clear").addEventListener("click", () => this.setMask(new Uint8Array(height * width)));
    $("mask-centre").addEventListener("click", () => this.setMask(centreHole(height, width, this.holeFraction())));
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      this.drawing = this.maskPixel(event);
      this.paint(this.drawing, this.drawing);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!this.drawing) return;
      const at = this.maskPixel(event);
      this.paint(this.drawing, at);
      this.drawing = at;
    });
    const end = () => {
      if (!this.drawing) return;
      this.drawing = null;
      this.maskChanged();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    this.drawMask();
  }

  holeFraction() {
    const task = (this.model.card.model_info || {}).task || {};
    return typeof task.hole_fraction === "number" ? task.hole_fraction : 0.25;
  }

  maskPixel(event) {
    const canvas = $("mask-canvas");
    const box = canvas.getBoundingClientRect();
    const x = Math.floor(((event.clientX - box.left) / box.width) * canvas.width);
    const y = Math.floor(((event.clientY - box.top) / box.height) * canvas.height);
    return [Math.min(canvas.width - 1, Math.max(0, x)), Math.min(canvas.height - 1, Math.max(0, y))];
  }

  /** Paints (or erases) the brush along the segment from `a` to `b`, in mask pixels. */
  paint(a, b) {
    const [width, height] = [$("mask-canvas").width, $("mask-canvas").height];
    const size = Number($("brush").value);
    const value = $("erase").checked ? 0 : 255;
    const steps = Math.max(Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]), 1);
    for (let s = 0; s <= steps; s++) {
      const cx = Math.round(a[0] + ((b[0] - a[0]) * s) / steps);
      const cy = Math.round(a[1] + ((b[1] - a[1]) * s) / steps);
      const start = -Math.floor((size - 1) / 2);
      for (let dy = start; dy < start + size; dy++) {
        for (let dx = start; dx < start + size; dx++) {
          const [x, y] = [cx + dx, cy + dy];
          if (x >= 0 && y >= 0 && x < width && y < height) this.mask[y * width + x] = value;
        }
      }
    }
    this.drawMask();
  }

  setMask(mask) {
    this.mask = mask;
    this.drawMask();
    this.maskChanged();
  }

  maskChanged() {
    $("mask-canvas").dataset.holePixels = String(this.mask.reduce((n, v) => n + (v >= 128 ? 1 : 0), 0));
    if (this.image) this.run();
  }

  drawMask() {
    const canvas = $("mask-canvas");
    const rgba = new Uint8ClampedArray(canvas.width * canvas.height * 4);
    this.mask.forEach((v, i) => {
      if (v >= 128) rgba.set([230, 40, 40, 170], 4 * i);
    });
    canvas.getContext("2d").putImageData(new ImageData(rgba, canvas.width, canvas.height), 0, 0);
    setDisplaySize(canvas, canvas.width, canvas.height, TARGET);
  }

  useImage(image) {
    const [height, width, channels] = this.inputs.image;
    const canvas = $("input-canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").putImageData(toImageData(image.pixels, width, height, channels), 0, 0);
    // Shown at about the size of the output, so input, baseline and output line up.
    setDisplaySize(canvas, width, height, TARGET);
    this.image = image;
    $("mask-canvas").hidden = !this.inputs.mask;
    $("transform-note").textContent = image.note;
    $("transform-run").disabled = false;
    $("input-caption").textContent = `Input (${width}×${height})`;
    return this.run();
  }

  async baseline() {
    const [height, width, channels] = this.inputs.image;
    const pixels = this.image.pixels;
    if (this.task === "super_resolution" && this.outputShape) {
      const [outHeight, outWidth] = this.outputShape;
      const up = bicubicUpsample(pixels, height, width, channels, outHeight, outWidth);
      return { blob: await encodePng(up, outWidth, outHeight, channels), caption: "Bicubic upsampling (computed in your browser)" };
    }
    if (this.task === "inpainting") {
      const filled = harmonicFill(pixels, this.mask, height, width, channels);
      return { blob: await encodePng(filled, width, height, channels), caption: "Harmonic fill of the hole (computed in your browser)" };
    }
    return null;
  }

  async body() {
    if (!this.inputs.mask) return this.image.png;
    const [height, width] = this.inputs.mask;
    const form = new FormData();
    form.append("image", this.image.png, "image.png");
    form.append("mask", await encodePng(this.mask, width, height, 1), "mask.png");
    return form;
  }

  /** Runs the model on the current image (and mask); coalesced like the sampling view's. */
  async run() {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await reporting(() => this.runOnce(), "transform");
      } while (this.again);
    })();
    await this.running;
    this.running = null;
  }

  async runOnce() {
    const body = await this.body();
    const size = body instanceof Blob ? body.size : [...body.values()].reduce((n, part) => n + part.size + 256, 0);
    if (size > this.limits.max_transform_body_bytes) {
      throw new Error(`This request would be ${size} bytes: over this model's :transform limit of ${this.limits.max_transform_body_bytes} bytes`);
    }
    const [response, baseline] = await Promise.all([this.model.api.post("transform", {}, body), this.baseline()]);
    const output = await response.blob();
    const holes = this.mask ? ` with a hole of ${this.mask.reduce((n, v) => n + (v >= 128 ? 1 : 0), 0)} pixels` : "";
    await showBlob($("output-image"), output, {
      alt: `The model's output for your image${holes}`,
      download: $("output-download"),
      filename: `${this.task}.png`,
      source: this.model.api.url("transform"),
    });
    if (baseline) {
      $("baseline-caption").textContent = baseline.caption;
      await showBlob($("baseline-image"), baseline.blob, { alt: `${baseline.caption}${holes}`, download: $("baseline-download"), filename: `${this.task}-baseline.png` });
    }
    $("output-image").dataset.runs = String(Number($("output-image").dataset.runs || 0) + 1);
  }
}
