// The playground's entry point: which model (from /ui/<name>, ?model=, or the server's
// default), its status, metadata and card from the API, then the view for its kind: a sampling
// model's (sampling.js, sampling_extras.js) or an image-to-image model's (transform.js).
//
// The view's state lives in the address bar (/ui/<name>?seed=..&truncation=..&direction=..),
// rewritten with history.replaceState on every change, so the address, or the "Link to this
// view" link, reopens the same view. Values that do not parse are left at their defaults.

import { ModelApi, serverConfig } from "./api.js";
import { renderCard } from "./card.js";
import { SamplingView } from "./sampling.js";
import { setUpProjection, setUpStyleMixing } from "./sampling_extras.js";
import { TransformView } from "./transform.js";
import { $, el, showError } from "./ui.js";

const DEFAULTS = {
  version: "",
  seed: 0,
  n: 8,
  truncation: 1,
  label: "",
  selected: null,
  direction: "",
  strength: 0,
  walkTo: null,
  steps: 8,
  walkFormat: "png",
  mixCoarse: "0,1,2",
  mixFine: "3,4,5",
  crossover: null,
};
// The state's keys -> their URL parameters.
const PARAMS = {
  version: "version",
  seed: "seed",
  n: "n",
  truncation: "truncation",
  label: "label",
  selected: "selected",
  direction: "direction",
  strength: "strength",
  walkTo: "walk_to",
  steps: "steps",
  walkFormat: "walk_format",
  mixCoarse: "mix_coarse",
  mixFine: "mix_fine",
  crossover: "crossover",
};
const SAFE = Number.MAX_SAFE_INTEGER;
const COMMIT_MS = 100;

/** The view's state from a query string; anything missing or malformed keeps its default. */
export function readState(query) {
  const state = { ...DEFAULTS };
  const get = (key) => query.get(PARAMS[key]);
  const number = (key, low, high, integer) => {
    const raw = get(key);
    if (raw === null || raw.trim() === "") return;
    const value = Number(raw);
    if (Number.isFinite(value) && value >= low && value <= high && (!integer || Number.isInteger(value))) state[key] = value;
  };
  number("seed", -SAFE, SAFE, true);
  number("n", 1, 64, true);
  number("truncation", 0, 1, false);
  number("label", 0, SAFE, true);
  number("selected", -SAFE, SAFE, true);
  number("strength", -5, 5, false);
  number("walkTo", -SAFE, SAFE, true);
  number("steps", 2, 256, true);
  number("crossover", 0, 1000, true);
  const text = (key, pattern) => {
    const raw = get(key);
    if (raw !== null && pattern.test(raw)) state[key] = raw;
  };
  text("version", /^[0-9]{1,18}$/);
  text("direction", /^[\w.-]{1,100}$/);
  text("walkFormat", /^(png|gif)$/);
  text("mixCoarse", /^-?\d+(,-?\d+){0,7}$/);
  text("mixFine", /^-?\d+(,-?\d+){0,7}$/);
  if (!state.direction) state.strength = 0;
  return state;
}

/** The address of this view: /ui/<model> and the state's non-default values. */
export function viewUrl(model, state) {
  const query = new URLSearchParams();
  for (const [key, param] of Object.entries(PARAMS)) {
    const value = state[key];
    if (value === DEFAULTS[key] || value === null || value === "") continue;
    query.set(param, String(value));
  }
  const text = query.toString();
  return `/ui/${encodeURIComponent(model)}` + (text ? `?${text}` : "");
}

function modelFromAddress(query) {
  const match = /^\/ui\/([^/]+)$/.exec(location.pathname);
  if (match) return decodeURIComponent(match[1]);
  return query.get("model") || "";
}

function fillModels(names, current) {
  const select = $("model");
  select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  select.value = current;
  select.addEventListener("change", () => location.assign(`/ui/${encodeURIComponent(select.value)}`));
}

function fillVersions(name, status, state) {
  const select = $("version");
  for (const entry of status.model_version_status || []) {
    select.append(el("option", { value: entry.version }, `${entry.version} (${entry.state.toLowerCase()})`));
  }
  select.value = state.version;
  select.addEventListener("change", () => {
    state.version = select.value;
    location.assign(viewUrl(name, state));
  });
}

async function main() {
  const query = new URLSearchParams(location.search);
  const state = readState(query);
  const config = await serverConfig();
  const name = modelFromAddress(query) || config.default_model;
  fillModels(config.models, name);
  const api = new ModelApi(name, state.version);
  const [status, metadata, card] = await Promise.all([api.status(), api.metadata(), api.card()]);
  fillVersions(name, status, state);
  const signatureDefs = metadata.metadata.signature_def.signature_def;
  const signatures = Object.fromEntries(Object.entries(signatureDefs).map(([key, def]) => [key, def.inputs || {}]));
  $("status").textContent = `${name}, version ${card.model_spec.version}: ${card.task === "generate" ? "sampling" : card.task} model`;
  document.title = `${name} · GAN playground`;
  renderCard($("card"), card);
  const model = { api, card, signatures, maxUpload: config.max_upload_bytes };
  // The address follows the state at most every COMMIT_MS: a dragged slider changes it ~60
  // times a second, and browsers throttle (and warn about) replaceState that often.
  let pending = null;
  const commit = () => {
    if (pending !== null) return;
    pending = setTimeout(() => {
      pending = null;
      const url = viewUrl(name, state);
      history.replaceState(null, "", url);
      $("share-link").href = url;
    }, COMMIT_MS);
  };
  if (card.task === "generate") {
    $("sampling").hidden = false;
    const view = new SamplingView(model, state, commit);
    view.start();
    setUpProjection(view);
    setUpStyleMixing(view);
  } else {
    new TransformView(model).start();
    commit();
  }
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  $("status").textContent = "Not loaded";
  showError(error.message || String(error));
  document.body.dataset.ready = "error";
});
