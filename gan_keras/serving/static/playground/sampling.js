// A sampling model's view: the grid of samples (one seed each, :sample?n=1), the truncation
// slider, the selected sample and its edits (one slider per direction, :edit), and walks to
// another seed (:interpolate). Projection and style mixing are in sampling_extras.js.
//
// Renders are coalesced: while one is in flight, further slider moves only mark that another
// is due, and the next render takes the newest state, so a dragged slider never queues a
// backlog of requests. Each slider input is a performance.mark; when the images it changed
// have been decoded and painted, a performance.measure ("truncation-to-paint",
// "edit-to-paint") records the latency, which benchmarks/playground_latency.py reads.

import { $, afterPaint, drawBlob, el, figure, fmt, reporting, showBlob, showError } from "./ui.js";
import { truncationRow } from "./card.js";
import { encodePng, fromNested } from "./png.js";

const TILE_TARGET = 128;
const BIG_TARGET = 256;
const STRENGTH_LIMIT = 5;
// The border of the server's grids (gan_keras.images.make_grid), hidden around one image.
const PADDING = 2;

function psiText(psi) {
  return psi < 1 ? `, truncation ${fmt(psi, 2)}` : "";
}

export class SamplingView {
  /** `model`: {api, card, signatures (name -> inputs), info}; `state`: the URL's state,
   * shared with playground.js, whose `commit()` writes it back to the address bar. */
  constructor(model, state, commit) {
    Object.assign(this, { model, state, commit });
    this.api = model.api;
    this.info = model.card.model_info || {};
    this.space = (this.info.control_space && this.info.control_space.name) || "z";
    this.tiles = new Map(); // seed -> {button, canvas, blob}
    this.pending = null; // "all" | "selection" | null: the render that is due
    this.idle = Promise.resolve();
    this.inputs = { last: 0, measured: 0, kinds: new Map() };
    this.projection = null; // {latent, label, blob, psnr} once an image was projected
    this.subject = "seed"; // what the selected panel shows and the edits apply to
    this.selectedFigure = figure("The selected sample");
    this.editFigure = figure("Edited", { hidden: false });
    this.walkFigure = figure("Walk");
    $("selected-figures").append(this.selectedFigure.node, this.editFigure.node);
    $("walk-figures").append(this.walkFigure.node);
  }

  /** Whether `signature` takes class labels ("label", or interpolate's "label_a"). */
  takesLabel(signature) {
    const inputs = this.model.signatures[signature] || {};
    return "label" in inputs || "label_a" in inputs;
  }

  /** Wires the controls to the state, then draws everything the state asks for. */
  start() {
    const { state } = this;
    const limits = this.model.card.limits;
    $("seed").value = state.seed;
    $("count").max = Math.min(64, limits.max_batch);
    $("count").value = state.n;
    $("truncation").value = state.truncation;
    $("truncation-value").value = fmt(state.truncation, 2);
    $("walk-steps").max = limits.max_interpolation_steps;
    $("walk-steps").value = state.steps;
    $("walk-format").value = state.walkFormat;
    $("walk-to").value = state.walkTo ?? state.seed + 1;
    if (this.takesLabel("sample")) {
      $("label-field").hidden = false;
      for (let c = 0; c < (this.info.num_classes || 0); c++) $("label").append(el("option", { value: String(c) }, String(c)));
      $("label").value = state.label === "" ? "" : String(state.label);
    }
    this.buildDirections();
    this.truncationNote();
    $("sample-form").addEventListener("submit", (event) => event.preventDefault());
    $("seed").addEventListener("change", () => this.setFromInput("seed", $("seed"), { integer: true }));
    $("count").addEventListener("change", () => this.setFromInput("n", $("count"), { integer: true, min: 1, max: Number($("count").max) }));
    $("seed-random").addEventListener("click", () => {
      $("seed").value = Math.floor(Math.random() * 1e6);
      this.setFromInput("seed", $("seed"), { integer: true });
    });
    $("label").addEventListener("change", () => {
      state.label = $("label").value === "" ? "" : Number($("label").value);
      this.changed("all");
    });
    $("truncation").addEventListener("input", () => {
      state.truncation = Number($("truncation").value);
      $("truncation-value").value = fmt(state.truncation, 2);
      this.truncationNote();
      this.markInput("truncation");
      this.changed("all");
    });
    $("edit-reset").addEventListener("click", () => this.setEdit("", 0));
    $("walk-go").addEventListener("click", () => this.walk());
    $("subject-seed").addEventListener("click", () => {
      this.subject = "seed";
      this.changed("selection");
    });
    this.changed("all");
    if (state.walkTo !== null) this.walk();
  }

  setFromInput(key, input, { integer = false, min = -Infinity, max = Infinity } = {}) {
    const value = Number(input.value);
    if (input.value === "" || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value)) || value < min || value > max) {
      const name = input.labels[0].textContent.trim();
      showError(`${name}: ${input.value || "nothing"} is not a whole number in [${min}, ${max}]`, "input");
      return;
    }
    showError("", "input");
    this.state[key] = value;
    if (key === "seed") this.state.selected = null;
    this.changed("all");
  }

  truncationNote() {
    const row = truncationRow(this.model.card, this.state.truncation);
    $("truncation-note").textContent = row
      ? `Evaluated at ψ = ${fmt(row.psi, 2)}: FD ${fmt(row.frechet_distance)}, precision ${fmt(row.precision)}, recall ${fmt(row.recall)}`
      : "";
  }

  buildDirections() {
    const entries = this.model.card.directions || [];
    const box = $("directions");
    if (!entries.length || !this.model.signatures.edit) {
      box.append(el("p", { className: "note" }, "This export lists no edit directions."));
      $("edit-reset").hidden = true;
      return;
    }
    for (const entry of entries) {
      const active = entry.name === this.state.direction;
      const input = el("input", {
        type: "range",
        min: -STRENGTH_LIMIT,
        max: STRENGTH_LIMIT,
        step: 0.25,
        value: active ? this.state.strength : 0,
        dataset: { direction: entry.name },
      });
      const output = el("output", { value: fmt(active ? this.state.strength : 0, 2) });
      input.addEventListener("input", () => {
        this.markInput("edit");
        this.setEdit(entry.name, Number(input.value));
      });
      box.append(el("label", { className: `direction ${entry.kind || ""}` }, el("span", {}, entry.name), input, output));
    }
  }

  /** Makes `name` the active direction at `strength`; the other sliders go back to 0. */
  setEdit(name, strength) {
    this.state.direction = strength === 0 && !name ? "" : name;
    this.state.strength = strength;
    for (const input of $("directions").querySelectorAll("input[type=range]")) {
      if (input.dataset.direction !== name) input.value = 0;
      input.nextElementSibling.value = fmt(Number(input.value), 2);
    }
    this.changed("selection");
  }

  markInput(kind) {
    const id = ++this.inputs.last;
    this.inputs.kinds.set(id, kind);
    performance.mark(`input-${id}`);
  }

  /** performance.measure for every slider input up to `upTo` (its images are painted now). */
  measureInputs(upTo) {
    for (let id = this.inputs.measured + 1; id <= upTo; id++) {
      performance.measure(`${this.inputs.kinds.get(id)}-to-paint`, `input-${id}`);
      performance.clearMarks(`input-${id}`);
      this.inputs.kinds.delete(id);
    }
    this.inputs.measured = Math.max(this.inputs.measured, upTo);
  }

  /** Asks for a render ("all": the grid too; "selection": the selected panel only). */
  changed(kind) {
    this.commit();
    this.pending = this.pending === "all" || kind === "all" ? "all" : "selection";
    if (!this.running) this.idle = this.loop();
    return this.idle;
  }

  async loop() {
    this.running = true;
    try {
      while (this.pending) {
        const kind = this.pending;
        this.pending = null;
        const upTo = this.inputs.last;
        const ok = await reporting(() => this.render(kind), "samples");
        if (ok) this.measureInputs(upTo);
      }
    } finally {
      this.running = false;
    }
  }

  sampleParams(seed, state = this.state) {
    const psi = state.truncation;
    return { n: 1, seed, truncation: psi < 1 ? psi : undefined, label: state.label === "" ? undefined : state.label };
  }

  seeds(state = this.state) {
    return Array.from({ length: state.n }, (_, i) => state.seed + i);
  }

  selectedSeed(state = this.state) {
    return state.selected ?? state.seed;
  }

  /** Draws the state as it is now (later slider moves wait for the next render). */
  async render(kind) {
    const state = { ...this.state };
    const grid = $("grid");
    grid.setAttribute("aria-busy", "true");
    const seeds = this.seeds(state);
    const seed = this.selectedSeed(state);
    // Every request goes out at once; the grid changes only when all its images arrived.
    const tileRequests = kind === "all" ? seeds.map((s) => this.api.image("sample", this.sampleParams(s, state))) : null;
    let selectedRequest;
    if (this.subject === "projection") {
      selectedRequest = Promise.resolve({ blob: this.projection.blob, url: "" });
    } else if (tileRequests && seeds.includes(seed)) {
      selectedRequest = tileRequests[seeds.indexOf(seed)];
    } else if (!tileRequests && this.tiles.has(seed)) {
      const tile = this.tiles.get(seed);
      selectedRequest = Promise.resolve({ blob: tile.blob, url: tile.canvas.dataset.source });
    } else {
      selectedRequest = this.api.image("sample", this.sampleParams(seed, state));
    }
    const editRequest = this.editRequest(seed, state);
    // Awaited in turn below: a failed edit must not hide the grid or the selected image.
    for (const request of [selectedRequest, editRequest]) request.catch(() => {});
    try {
      if (tileRequests) await this.showTiles(seeds, await Promise.all(tileRequests), state);
      await this.showSelected(await selectedRequest, state);
      let edited;
      try {
        edited = await editRequest;
      } catch (error) {
        await this.showEdited(null, state, "No edit: the server refused it (see the message above).");
        throw error;
      }
      await this.showEdited(edited, state);
      await afterPaint();
    } finally {
      grid.setAttribute("aria-busy", "false");
    }
    grid.dataset.rendered = JSON.stringify([state.seed, state.n, state.truncation, state.label]);
    return true;
  }

  async showTiles(seeds, tiles, state) {
    const grid = $("grid");
    const kept = new Map();
    await Promise.all(
      seeds.map(async (seed, i) => {
        let tile = this.tiles.get(seed);
        if (!tile) {
          const canvas = el("canvas");
          const button = el("button", { type: "button", className: "tile", dataset: { seed: String(seed) } }, canvas);
          button.addEventListener("click", () => this.select(seed));
          tile = { button, canvas };
        }
        tile.blob = tiles[i].blob;
        kept.set(seed, tile);
        const label = `Sample of seed ${seed}${psiText(state.truncation)}`;
        await drawBlob(tile.canvas, tile.blob, { label, target: TILE_TARGET, source: tiles[i].url, crop: PADDING });
      }),
    );
    this.tiles = kept;
    const buttons = seeds.map((seed) => kept.get(seed).button);
    if (buttons.some((button, i) => grid.children[i] !== button) || grid.children.length !== buttons.length) {
      grid.replaceChildren(...buttons);
    }
    this.markSelectedTile();
  }

  markSelectedTile() {
    const selected = this.subject === "seed" ? this.selectedSeed() : null;
    for (const [seed, tile] of this.tiles) tile.button.setAttribute("aria-pressed", String(seed === selected));
  }

  select(seed) {
    this.state.selected = seed;
    this.subject = "seed";
    this.changed("selection");
  }

  /** The edited image as {blob, url}, or null when no edit is set. */
  async editRequest(seed, state) {
    if (!state.direction || state.strength === 0) return null;
    if (this.subject === "projection") return this.editLatent(state);
    return this.api.image("edit", {
      direction: state.direction,
      seed,
      num: 1,
      strengths: state.strength,
      truncation: state.truncation < 1 ? state.truncation : undefined,
      label: state.label === "" ? undefined : state.label,
    });
  }

  /** The projection moved along the active direction, through :predict's edit signature
   * (:edit starts from a seed; a projected latent is sent as it is). */
  async editLatent(state) {
    const { projection } = this;
    const entry = (this.model.card.directions || []).find((d) => d.name === state.direction);
    if (!entry) throw new Error(`unknown direction ${JSON.stringify(state.direction)}: this model's are listed under Edit directions`);
    const inputs = { [this.space]: [projection.latent], direction: entry.index, strength: state.strength };
    if (this.takesLabel("edit")) inputs.label = [projection.label];
    const outputs = await this.api.predict("edit", inputs);
    const image = fromNested(outputs.images[0]);
    return { blob: await encodePng(image.pixels, image.width, image.height, image.channels), url: "" };
  }

  async showSelected(selected, state) {
    const projected = this.subject === "projection";
    const seed = this.selectedSeed(state);
    $("selected-title").textContent = projected ? "Selected: your projected image" : `Selected: seed ${seed}`;
    $("subject-seed").hidden = !projected;
    this.selectedFigure.caption.textContent = projected ? `Projection (PSNR ${this.projection.psnrText})` : `Seed ${seed}${psiText(state.truncation)}`;
    await showBlob(this.selectedFigure.img, selected.blob, {
      alt: projected ? "The model's image closest to the one you gave" : `Sample of seed ${seed}${psiText(state.truncation)}`,
      target: BIG_TARGET,
      download: this.selectedFigure.download,
      filename: projected ? "projection.png" : `seed-${seed}.png`,
      source: selected.url,
      crop: projected ? 0 : PADDING,
    });
    $("subject-note").textContent = projected ? "Edits apply to the projection; walks start from seeds." : "";
    this.markSelectedTile();
  }

  /** The edited image ({blob, url}), or `hint` instead when `edited` is null. */
  async showEdited(edited, state, hint = "Move a direction's slider to edit it.") {
    const projected = this.subject === "projection";
    const seed = this.selectedSeed(state);
    const name = projected ? "your projected image" : `seed ${seed}`;
    if (edited) {
      const how = `${state.direction} ${state.strength > 0 ? "+" : ""}${fmt(state.strength, 2)}`;
      this.editFigure.caption.textContent = `Edited: ${how}`;
      await showBlob(this.editFigure.img, edited.blob, {
        alt: `${name[0].toUpperCase()}${name.slice(1)} edited along ${how}`,
        target: BIG_TARGET,
        download: this.editFigure.download,
        filename: `${projected ? "projection" : `seed-${seed}`}-${state.direction}.png`,
        source: edited.url,
        crop: projected ? 0 : PADDING,
      });
    } else {
      this.editFigure.img.hidden = true;
      this.editFigure.download.hidden = true;
      this.editFigure.caption.textContent = hint;
    }
  }

  /** The class a seed's sample has on a conditional model with random labels (walks need it):
   * truncated_sample answers the labels it drew. */
  async labelOf(seed) {
    if (this.state.label !== "") return this.state.label;
    const outputs = await this.api.predict("truncated_sample", { num_samples: 1, seed, truncation: 1.0, label: [] });
    return outputs.label[0];
  }

  async walk() {
    await reporting(async () => {
      const input = $("walk-to");
      const to = Number(input.value);
      const steps = Number($("walk-steps").value);
      const max = Number($("walk-steps").max);
      if (input.value === "" || !Number.isSafeInteger(to)) throw new Error(`To seed: ${input.value || "nothing"} is not a whole number`);
      if (!Number.isInteger(steps) || steps < 2 || steps > max) throw new Error(`Steps must be a whole number in [2, ${max}]`);
      const from = this.selectedSeed();
      const format = $("walk-format").value;
      Object.assign(this.state, { walkTo: to, steps, walkFormat: format });
      this.commit();
      const params = { seed_a: from, seed_b: to, steps, format: format === "png" ? undefined : format };
      if (this.takesLabel("interpolate")) [params.label_a, params.label_b] = await Promise.all([this.labelOf(from), this.labelOf(to)]);
      const { blob, url } = await this.api.image("interpolate", params);
      this.walkFigure.caption.textContent = `From seed ${from} to seed ${to} in ${steps} steps`;
      await showBlob(this.walkFigure.img, blob, {
        alt: `Walk from seed ${from} to seed ${to} in ${steps} steps` + (format === "gif" ? " (animation)" : ""),
        target: format === "gif" ? BIG_TARGET : BIG_TARGET * 4,
        download: this.walkFigure.download,
        filename: `walk-${from}-${to}.${format}`,
        source: url,
      });
    }, "walk");
  }
}
