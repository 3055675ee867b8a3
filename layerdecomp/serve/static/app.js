// The page: uploads the form to POST /api/jobs, polls GET /api/jobs/{id}, shows the result.
// Only this page knows its runs' ids, so a second browser sees its own results, not these.
"use strict";

const $ = (id) => document.getElementById(id);
const LABELS = {
  "mask.png": "mask",
  "foreground.png": "foreground (over a checkerboard)",
  "background.png": "background",
  "recomposed.png": "recomposition",
};
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
let limits = {};
let formats = {};
let formOptions = []; // the form's options, from /api/info: the page names none itself
const field = (name) => $("form").elements.namedItem(name);

// One option's input, from its spec in /api/info: a checkbox for a yes/no option, a list for
// one with choices, a number (with its bounds) or a text field. Its value is filled later.
function optionInput(spec) {
  const label = document.createElement("label");
  let input;
  if (spec.choices) {
    input = document.createElement("select");
    input.append(...spec.choices.map((choice) => new Option(choice, choice)));
    input.value = spec.default;
  } else {
    input = document.createElement("input");
    const numeric = spec.kind === "int" || spec.kind === "float";
    input.type = spec.kind === "bool" ? "checkbox" : numeric ? "number" : "text";
  }
  input.id = `option-${spec.name}`;
  input.name = spec.name;
  input.title = spec.help;
  if (spec.placeholder) input.placeholder = spec.placeholder;
  if (input.type === "number") {
    const step = spec.step || (spec.kind === "int" ? 1 : null);
    const nudge = step || 0.01; // an excluded bound: the next value the field allows
    input.step = step || "any";
    if (spec.min !== null) input.min = spec.min_open ? spec.min + nudge : spec.min;
    if (spec.max !== null) input.max = spec.max_open ? spec.max - nudge : spec.max;
  }
  if (input.type === "checkbox") {
    input.checked = spec.default === true;
    label.classList.add("check");
    label.append(input, ` ${spec.label}`);
  } else {
    label.append(`${spec.label} `, input);
  }
  return label;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch (error) {
    body = { error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function loadInfo() {
  const info = await getJSON("/api/info");
  limits = info.limits;
  formats = info.formats;
  // The options' inputs, in the server's order, with its labels, bounds and help (the command
  // line shows the same).
  formOptions = info.options;
  for (const spec of formOptions) {
    $(spec.more ? "more-options" : "options").append(optionInput(spec));
  }
  // A field someone filled before the settings arrived keeps their value.
  for (const [name, value] of Object.entries(info.defaults)) {
    const input = field(name);
    if (input && input.value === "" && value !== null && value !== undefined) {
      input.value = value;
    }
  }
  $("model").textContent = `Model: ${info.model.spec || info.model.kind || "?"}.`;
  $("add-fg").hidden = limits.max_foregrounds <= 1;
}

function addForeground() {
  const inputs = document.querySelectorAll(".fg");
  if (inputs.length >= limits.max_foregrounds) return;
  const label = inputs[0].parentElement.cloneNode(true);
  label.querySelector("input").value = "";
  $("fg-list").appendChild(label);
}

function showFile(file) {
  if (!file) return;
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("drop-text").textContent = file.name;
}

function setStatus(text, value, max, failed = false) {
  $("status").hidden = false;
  $("status").classList.toggle("failed", failed);
  $("status-text").textContent = text;
  const bar = $("progress");
  if (value === null) {
    bar.removeAttribute("value"); // indeterminate
  } else {
    bar.max = max;
    bar.value = value;
  }
}

function showProgress(job) {
  const p = job.progress || {};
  if (job.state === "queued") {
    const ahead = job.position || 0;
    setStatus(ahead ? `queued: ${ahead} run${ahead > 1 ? "s" : ""} ahead` : "starting", null);
  } else if (p.phase === "layers") {
    const change = p.change === undefined ? "" : ` (mask change ${p.change.toFixed(4)})`;
    setStatus(`mask update ${p.update} of ${p.updates}${change}`, p.update, p.updates);
  } else if (p.phase === "final") {
    setStatus("final layers", p.updates, p.updates);
  } else if (p.phase === "writing") {
    setStatus("writing the files", p.updates, p.updates);
  }
}

function figure(url, name, caption) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.id = `result-${name.replace(/\.[^.]*$/, "")}`;
  img.alt = caption;
  img.src = url;
  if (name === "foreground.png" || /^layer\d+\.png$/.test(name)) img.classList.add("checker");
  const text = document.createElement("figcaption");
  text.textContent = caption;
  fig.append(img, text);
  return fig;
}

function link(url, text, id) {
  const a = document.createElement("a");
  a.href = url;
  a.textContent = text;
  a.download = "";
  if (id) a.id = id;
  return a;
}

async function showResults(job, started) {
  const base = `/api/jobs/${encodeURIComponent(job.id)}`;
  const panels = $("panels");
  const sheet = $("sheet-panel");
  panels.replaceChildren();
  sheet.replaceChildren();
  const pngs = job.files.filter((name) => name.endsWith(".png"));
  const layered = pngs.filter((n) => /^(layer|mask)\d+\.png$/.test(n));  // more than two layers
  const ordered = [...layered, ...Object.keys(LABELS).filter((n) => pngs.includes(n)),
    ...pngs.filter((n) => !(n in LABELS) && !layered.includes(n) && n !== "sheet.png")];
  for (const name of ordered) {
    panels.append(figure(`${base}/files/${name}`, name, LABELS[name] || name));
  }
  if (pngs.includes("sheet.png")) {
    sheet.append(figure(`${base}/files/sheet.png`, "sheet.png", "contact sheet"));
  }
  const list = $("downloads");
  list.replaceChildren();
  for (const [format, files] of Object.entries(job.formats)) {
    const item = document.createElement("li");
    item.title = (formats[format] || {}).description || "";
    item.append(`${format.toUpperCase()}: `);
    files.forEach((name, i) => {
      if (i) item.append(", ");
      item.append(link(`${base}/files/${name}`, name, `download-${name.replace(".", "-")}`));
    });
    list.append(item);
  }
  const everything = document.createElement("li");
  everything.append(link(`${base}/zip`, "everything (.zip)", "download-zip"), " with ",
    link(`${base}/files/run.json`, "run.json", "download-run-json"));
  list.append(everything);
  $("results").dataset.job = job.id;
  $("results").hidden = false;
  const images = [...document.querySelectorAll("#results img")];
  await Promise.all(images.map((img) => img.decode().catch(() => null)));
  const seconds = (performance.now() - started) / 1000;
  const t = job.summary.timings;
  $("status").dataset.elapsed = seconds.toFixed(3);
  setStatus(`done in ${seconds.toFixed(1)} s (decomposition ${t.decompose.toFixed(1)} s, ` +
    `queued ${t.queued.toFixed(1)} s; seed ${job.summary.seed})`, 1, 1);
  $("warning").textContent = job.summary.warning ? `Warning: ${job.summary.warning}.` : "";
  $("warning").hidden = !job.summary.warning;
  $("status").dataset.state = "done";
}

async function run(event) {
  event.preventDefault();
  $("warning").hidden = true;
  const file = $("image").files[0];
  if (!file) return setStatus("choose an image first", 0, 1, true);
  const data = new FormData();
  data.append("image", file, file.name);
  document.querySelectorAll(".fg").forEach((input) => data.append("fg", input.value));
  data.append("bg", $("bg").value);
  if ($("seed").value !== "") data.append("seed", $("seed").value);
  for (const { name } of formOptions) {
    const input = field(name);
    if (input.type === "checkbox") data.append(name, input.checked ? "true" : "false");
    else if (input.value !== "") data.append(name, input.value);
  }
  $("run").disabled = true;
  $("status").dataset.state = "running";
  const started = performance.now();
  try {
    setStatus("uploading", null);
    let job = await getJSON("/api/jobs", { method: "POST", body: data });
    while (job.state === "queued" || job.state === "running") {
      showProgress(job);
      await sleep(250);
      job = await getJSON(`/api/jobs/${encodeURIComponent(job.id)}`);
    }
    if (job.state === "failed") throw new Error(job.error);
    await showResults(job, started);
  } catch (error) {
    setStatus(`error: ${error.message}`, 0, 1, true);
    $("status").dataset.state = "failed";
  } finally {
    $("run").disabled = false;
  }
}

function setUp() {
  $("form").addEventListener("submit", run);
  $("image").addEventListener("change", () => showFile($("image").files[0]));
  $("add-fg").addEventListener("click", addForeground);
  const drop = document.querySelector(".drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    $("image").files = e.dataTransfer.files;
    showFile($("image").files[0]);
  });
  loadInfo().catch((error) => setStatus(`error: ${error.message}`, 0, 1, true));
}

document.addEventListener("DOMContentLoaded", setUp);
