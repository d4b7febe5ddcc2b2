// The rest of a sampling model's view: projecting an image the user gives (:project), whose
// latent then becomes the subject of the edit sliders, and style mixing for exports that have
// the style_mix signature (StyleGAN2), through :predict.

import { $, el, figure, fmt, reporting, showBlob, showError } from "./ui.js";
import { encodePng, fromNested, imageFileAs } from "./png.js";

const TILE_TARGET = 96;
const MAX_MIX_SEEDS = 8;

function base64Blob(text, type) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

/** Wires the projection panel to `view` (a SamplingView). */
export function setUpProjection(view) {
  const { model } = view;
  const panel = $("project-panel");
  if (!model.signatures.project || !view.info.image_shape) {
    panel.hidden = true;
    return;
  }
  const limits = model.card.limits;
  const shape = view.info.image_shape;
  const target = figure("What was sent");
  const reconstruction = figure("The model's closest image");
  $("project-figures").append(target.node, reconstruction.node);
  $("project-steps").max = limits.max_project_steps;
  $("project-limits").textContent =
    `Any image the browser reads, up to ${limits.max_body_bytes} bytes; it is sent as a ` +
    `${shape[1]}×${shape[0]} PNG with ${shape[2]} channel(s), converted here if it is not one.`;

  async function project(file) {
    await reporting(async () => {
      const steps = Number($("project-steps").value);
      if (!Number.isInteger(steps) || steps < 0 || steps > limits.max_project_steps) {
        throw new Error(`Steps must be a whole number in [0, ${limits.max_project_steps}]`);
      }
      $("project-note").textContent = `Projecting ${file.name}…`;
      const image = await imageFileAs(file, shape, limits.max_body_bytes);
      await showBlob(target.img, image.png, { alt: `The image you gave, as sent to the model (${shape[1]}×${shape[0]})`, download: target.download, filename: "sent.png" });
      const label = view.takesLabel("project") ? (view.state.label === "" ? 0 : view.state.label) : undefined;
      const response = await model.api.post("project", { steps, label }, image.png);
      const body = await response.json();
      const psnrText = body.psnr === null ? "exact, ∞ dB" : `${fmt(body.psnr, 2)} dB`;
      const blob = base64Blob(body.reconstruction_png_b64, "image/png");
      reconstruction.caption.textContent = `The model's closest image (PSNR ${psnrText})`;
      await showBlob(reconstruction.img, blob, {
        alt: `The model's image closest to yours, PSNR ${psnrText}`,
        download: reconstruction.download,
        filename: "projection.png",
      });
      view.projection = { latent: body[view.space], label, blob, psnrText };
      view.subject = "projection";
      $("project-note").textContent =
        (image.note ? `${image.note} ` : "") +
        (label !== undefined ? `Projected as class ${label}. ` : "") +
        "The edit sliders now move the projection.";
      panel.dataset.projected = "true";
      await view.changed("selection");
    }, "project");
  }

  $("project-file").addEventListener("change", () => {
    const file = $("project-file").files[0];
    if (file) project(file);
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) project(file);
    else showError("Drop an image file.", "project");
  });
}

function parseSeeds(text, what) {
  const seeds = text.split(",").map((part) => part.trim()).filter(Boolean).map(Number);
  if (!seeds.length || seeds.length > MAX_MIX_SEEDS || !seeds.every(Number.isSafeInteger)) {
    throw new Error(`${what}: give 1 to ${MAX_MIX_SEEDS} whole numbers separated by commas`);
  }
  return seeds;
}

async function pngOf(nested) {
  const image = fromNested(nested);
  return { image, blob: await encodePng(image.pixels, image.width, image.height, image.channels) };
}

/** One PNG of the mixes, rows = coarse seeds, columns = fine seeds, 2 px apart (as the
 * server's grids are). */
async function gridPng(images, rows, cols) {
  const { width, height, channels } = images[0];
  const [gw, gh] = [cols * (width + 2) + 2, rows * (height + 2) + 2];
  const pixels = new Uint8Array(gw * gh * channels);
  images.forEach((image, i) => {
    const [top, left] = [2 + Math.floor(i / cols) * (height + 2), 2 + (i % cols) * (width + 2)];
    for (let y = 0; y < height; y++) {
      const row = image.pixels.subarray(y * width * channels, (y + 1) * width * channels);
      pixels.set(row, ((top + y) * gw + left) * channels);
    }
  });
  return encodePng(pixels, gw, gh, channels);
}

/** Wires the style-mixing panel (shown only for exports with a style_mix signature). */
export function setUpStyleMixing(view) {
  const { model, state } = view;
  if (!model.signatures.style_mix) return;
  const numWs = view.info.num_ws || 1;
  $("mix-panel").hidden = false;
  const crossover = $("mix-crossover");
  crossover.max = numWs;
  crossover.value = state.crossover ?? Math.floor(numWs / 2);
  $("mix-crossover-value").value = crossover.value;
  $("mix-coarse").value = state.mixCoarse;
  $("mix-fine").value = state.mixFine;
  let running = null;
  let again = false;

  async function mixOnce() {
    const coarse = parseSeeds($("mix-coarse").value, "Coarse seeds");
    const fine = parseSeeds($("mix-fine").value, "Fine seeds");
    if (coarse.length * fine.length > model.card.limits.max_batch) {
      throw new Error(`${coarse.length} × ${fine.length} mixes is more than this server's --max_batch=${model.card.limits.max_batch}`);
    }
    const k = Number(crossover.value);
    Object.assign(state, { mixCoarse: coarse.join(","), mixFine: fine.join(","), crossover: k });
    view.commit();
    const inputs = { seeds_coarse: coarse, seeds_fine: fine, crossover: k };
    const label = view.takesLabel("style_mix") ? (state.label === "" ? 0 : state.label) : undefined;
    if (label !== undefined) inputs.label = label;
    const outputs = await model.api.predict("style_mix", inputs);
    const cells = await Promise.all(outputs.images.map(pngOf));
    const table = el("table", { className: "mix" });
    table.append(el("caption", {}, `Layers below ${k} from the row's seed, layers ${k} and up from the column's (of ${numWs})`));
    table.append(el("tr", {}, el("td"), ...fine.map((seed) => el("th", { scope: "col" }, `fine ${seed}`))));
    const shows = [];
    coarse.forEach((a, i) => {
      const tr = el("tr", {}, el("th", { scope: "row" }, `coarse ${a}`));
      fine.forEach((b, j) => {
        const img = el("img", { alt: "" });
        const alt = `Coarse styles of seed ${a}, fine styles of seed ${b}, crossover ${k}` + (label !== undefined ? `, class ${label}` : "");
        shows.push(showBlob(img, cells[i * fine.length + j].blob, { alt, target: TILE_TARGET }));
        tr.append(el("td", {}, img));
      });
      table.append(tr);
    });
    await Promise.all(shows);
    $("mix-grid").replaceChildren(table);
    $("mix-grid").dataset.rendered = JSON.stringify([state.mixCoarse, state.mixFine, k]);
    const download = $("mix-download");
    if (download.href) URL.revokeObjectURL(download.href);
    download.href = URL.createObjectURL(await gridPng(cells.map((c) => c.image), coarse.length, fine.length));
    download.download = `style-mix-${k}.png`;
    download.hidden = false;
  }

  async function mix() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await reporting(mixOnce, "mix");
      } while (again);
    })();
    await running;
    running = null;
  }

  crossover.addEventListener("input", () => {
    $("mix-crossover-value").value = crossover.value;
    mix();
  });
  $("mix-coarse").addEventListener("change", mix);
  $("mix-fine").addEventListener("change", mix);
  mix();
}
