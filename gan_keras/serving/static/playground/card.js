// The model's card and metrics, from :card: the evaluation's FD placement line, the gate's
// decision, the truncation trade-off, the nearest-neighbour (memorisation) check, an
// image-to-image model's table beside its references, then model_card.md itself.
//
// The card is Markdown; it is drawn here with a deliberately small reader (headings, lists,
// tables, paragraphs, `code` and **bold**) that builds DOM nodes from text, so nothing in a
// card can become markup or script.

import { el, fmt } from "./ui.js";

function inline(text) {
  const nodes = [];
  const parts = text.split(/(`[^`]*`|\*\*[^*]+\*\*)/);
  for (const part of parts) {
    if (part.startsWith("`") && part.endsWith("`") && part.length >= 2) nodes.push(el("code", {}, part.slice(1, -1)));
    else if (part.startsWith("**") && part.endsWith("**") && part.length >= 4) nodes.push(el("strong", {}, part.slice(2, -2)));
    else if (part) nodes.push(part);
  }
  return nodes;
}

function cells(line) {
  return line.replace(/^\s*\|/, "").replace(/\|\s*$/, "").split("|").map((cell) => cell.trim());
}

/** DOM nodes for a Markdown text (the subset model cards use). */
export function markdown(text) {
  const out = [];
  let list = null;
  let table = null;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) out.push(el("p", {}, ...inline(paragraph.join(" "))));
    paragraph = [];
    list = null;
    table = null;
  };
  for (const line of text.split("\n")) {
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      out.push(el(`h${Math.min(6, heading[1].length + 2)}`, {}, ...inline(heading[2])));
    } else if (/^\s*[-*]\s+/.test(line)) {
      if (paragraph.length || table) flush();
      if (!list) out.push((list = el("ul")));
      list.append(el("li", {}, ...inline(line.replace(/^\s*[-*]\s+/, ""))));
    } else if (/^\s*\|/.test(line)) {
      if (paragraph.length || list) flush();
      if (/^\s*\|[\s|:-]+\|\s*$/.test(line)) continue; // the header's rule
      if (!table) {
        out.push((table = el("table")));
        table.append(el("tr", {}, ...cells(line).map((cell) => el("th", { scope: "col" }, ...inline(cell)))));
      } else {
        table.append(el("tr", {}, ...cells(line).map((cell) => el("td", {}, ...inline(cell)))));
      }
    } else if (/^\s+\S/.test(line) && list) {
      list.lastElementChild.append(" ", ...inline(line.trim())); // a list item's next line
    } else if (!line.trim()) {
      flush();
    } else {
      if (list || table) flush();
      paragraph.push(line.trim());
    }
  }
  flush();
  return out;
}

function row(cellsText, header = false) {
  return el("tr", {}, ...cellsText.map((text) => el(header ? "th" : "td", header ? { scope: "col" } : {}, text)));
}

function truncationTable(rows) {
  const table = el("table", { id: "truncation-table" }, el("caption", {}, "Truncation trade-off (evaluation)"));
  table.append(row(["ψ", "FD", "precision", "recall"], true));
  for (const r of [...rows].sort((a, b) => b.psi - a.psi)) {
    table.append(row([fmt(r.psi, 2), fmt(r.frechet_distance), fmt(r.precision), fmt(r.recall)]));
  }
  return table;
}

function methodsTable(methods) {
  const table = el("table", { id: "methods-table" }, el("caption", {}, "Beside its references (evaluation)"));
  table.append(row(["method", "PSNR (dB)", "SSIM", "FD"], true));
  for (const [name, scores] of Object.entries(methods)) {
    table.append(row([name, fmt(scores.psnr), fmt(scores.ssim), fmt(scores.frechet_distance)]));
  }
  return table;
}

/** The metrics block: nodes for `card.evaluation` (or a line saying there is none). */
export function metrics(card) {
  const evaluation = card.evaluation;
  if (!evaluation) {
    return [el("p", { id: "metrics-missing" }, "This version was exported without an evaluation: there are no metrics to show.")];
  }
  const nodes = [];
  if (evaluation.summary) nodes.push(el("p", { id: "fd-summary" }, el("strong", {}, "Placement: "), evaluation.summary));
  if (evaluation.frechet_distance_description) {
    nodes.push(el("p", { className: "note" }, `${evaluation.distance_name || "FD"} is ${evaluation.frechet_distance_description}.`));
  }
  if (evaluation.blessed !== null) {
    const verdict = evaluation.blessed ? "blessed" : "not blessed";
    nodes.push(el("p", { id: "gate" }, `Gate: ${verdict}` + (evaluation.gate_reason ? ` (${evaluation.gate_reason})` : "") + "."));
  }
  const headline = Object.entries(evaluation.headline || {});
  if (headline.length) nodes.push(el("p", {}, headline.map(([k, v]) => `${k} ${fmt(v)}`).join(", ")));
  if (evaluation.truncation && evaluation.truncation.length) nodes.push(truncationTable(evaluation.truncation));
  const nearest = evaluation.nearest_neighbours;
  if (nearest) {
    const parts = [`nearest-training-image distance of samples / of real eval images = ${fmt(nearest.ratio)} (well below 1 would suggest copying)`];
    if (nearest.near_copy_share !== null) {
      parts.push(`${fmt(100 * nearest.near_copy_share, 1)}% of samples are closer to a training image than 95% of real eval images are (about 5% for a model that does not copy)`);
    }
    nodes.push(el("p", { id: "nearest-check" }, el("strong", {}, "Nearest-neighbour check: "), parts.join("; ") + "."));
  }
  if (evaluation.methods && Object.keys(evaluation.methods).length) nodes.push(methodsTable(evaluation.methods));
  return nodes;
}

/** The evaluation's row nearest to truncation `psi`, for the slider's note (or null). */
export function truncationRow(card, psi) {
  const rows = (card.evaluation && card.evaluation.truncation) || [];
  let best = null;
  for (const r of rows) if (best === null || Math.abs(r.psi - psi) < Math.abs(best.psi - psi)) best = r;
  return best;
}

/** Fills the card section: metrics, then the card's text (or a line saying there is none). */
export function renderCard(container, card) {
  const info = card.model_info || {};
  const shape = info.image_shape ? info.image_shape.join("×") : "unknown";
  const facts = [`version ${card.model_spec.version}`, `task ${card.task}`, `images ${shape}`];
  if (info.latent_dim) facts.push(`latent ${info.latent_dim}`);
  if (info.num_classes) facts.push(`${info.num_classes} classes`);
  if (info.control_space) facts.push(`controls in ${info.control_space.name}-space`);
  const body = card.model_card
    ? el("div", { id: "card-text", className: "card-text" }, ...markdown(card.model_card))
    : el("p", { id: "card-text" }, "This export has no model card (assets.extra/model_card.md).");
  container.replaceChildren(
    el("h2", {}, "Model card and metrics"),
    el("p", { id: "model-facts" }, facts.join(" · ")),
    ...metrics(card),
    el("details", { open: true }, el("summary", {}, "Model card"), body),
  );
}
