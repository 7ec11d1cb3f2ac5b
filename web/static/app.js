// The page: pick an image, choose alpha and output scale, run jobs, keep one result per alpha, compare, preview
// crops, download. Several images at once become a batch (batch.js): one job each, listed with their own state.
import { Aborted, ApiError, createApi } from "./api.js";
import { createBatch } from "./batch.js";
import { createCompare } from "./compare.js";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);

// Quick preview: at most this many input pixels per side of the visible area, plus a margin of context so the crop's
// edges look like the whole-image result; the margin is cut off again before showing it.
// A crop is a small job (wait=true), so one that a newer alpha supersedes is left to finish; the debounce keeps
// a run of arrow-key presses to one crop.
const PREVIEW_SIDE = 160;
const PREVIEW_MARGIN = 8;
const PREVIEW_DEBOUNCE_MS = 350;

const ui = {
  body: document.body,
  fileInput: $("file-input"),
  fileInfo: $("file-info"),
  fileError: $("file-error"),
  model: $("model"),
  scale: $("scale"),
  alpha: $("alpha"),
  alphaValue: $("alpha-value"),
  alphaName: $("alpha-name"),
  alphaLow: $("alpha-low"),
  alphaHigh: $("alpha-high"),
  alphaHelp: $("alpha-help"),
  alphaNote: $("alpha-note"),
  previewMode: $("preview-mode"),
  start: $("start"),
  cancel: $("cancel"),
  progress: $("progress"),
  progressBar: $("progress-bar"),
  progressFill: $("progress-fill"),
  progressPercent: $("progress-percent"),
  statusText: $("status-text"),
  error: $("error"),
  results: $("results"),
  chips: $("chips"),
  download: $("download"),
  downloadText: $("download-text"),
  viewer: $("viewer"),
  tagAfter: $("tag-after"),
  zoomLevel: $("zoom-level"),
  dropOverlay: $("drop-overlay"),
  keyDialog: $("key-dialog"),
  keyInput: $("key-input"),
  keyMessage: $("key-message"),
};

const state = {
  file: null, // {file, name, stem, width, height, url}
  results: new Map(), // "model|format|alpha" -> {url, blob, filename, alpha, seconds}
  shownKey: null,
  job: null, // {id, controller} of the whole-image job
  preview: null, // {controller, alpha}
};

const compare = createCompare({
  viewer: ui.viewer,
  beforeWorld: $("before-world"),
  afterWorld: $("after-world"),
  afterLayer: $("after-layer"),
  beforeImg: $("before-img"),
  afterImg: $("after-img"),
  previewBox: $("preview-box"),
  previewImg: $("preview-img"),
  divider: $("divider"),
});

const api = createApi({ header: config.api_key_header, keyRequired: config.api_key_required, askKey });

// ---------- small helpers ----------

const alpha = () => Number(ui.alpha.value);
const alphaText = (a) => a.toFixed(2);
const format = () => document.querySelector('input[name="format"]:checked').value;
const model = () => ui.model.value;
// The chosen model's alpha as GET /models gives it ({default, name, low, high}); null for a single model.
const modelAlpha = () => config.models.find((m) => m.name === model())?.alpha ?? null;
const atAlpha = (a = alpha()) => (modelAlpha() ? ` at α ${alphaText(a)}` : "");
const modelScale = () => Number(ui.model.selectedOptions[0]?.dataset.scale || 4);
const scale = () => Number(ui.scale.value) || modelScale(); // the output's: the model's own or a smaller one
const resultKey = (a = alpha()) => `${model()}|${format()}|${scale()}|${alphaText(a)}`;
// The server's rule (models/resize.py output_size): each side times the scale, rounded to the nearest pixel.
const outputSize = ({ width, height }, s = scale()) => ({
  width: Math.max(1, Math.floor(width * s + 0.5)),
  height: Math.max(1, Math.floor(height * s + 0.5)),
});

/** What every job of this page asks for; `scale` only when it differs from the model's own. */
function jobParams(a = alpha()) {
  const params = { model: model(), format: format() };
  if (modelAlpha()) params.alpha = alphaText(a); // a single model refuses one
  if (scale() !== modelScale()) params.scale = String(scale());
  return params;
}

/** The output scales a model offers: its own, then each whole one below it down to 2 (and 1.5 for a x2 model). */
function fillScales() {
  const own = modelScale();
  const kept = Number(ui.scale.value);
  const values = [];
  for (let s = own; s >= 2; s -= 1) values.push(s);
  if (own <= 2) values.push(1.5);
  ui.scale.replaceChildren(
    ...values.map((s) => new Option(s === own ? `×${s} (model)` : `×${s}`, String(s), false, s === kept)),
  );
  if (!values.includes(kept)) ui.scale.value = String(own);
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

const megapixels = (pixels) => `${(pixels / 1e6).toFixed(pixels < 1e6 ? 2 : 1)} MP`;

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function setState(name) {
  ui.body.dataset.state = name;
}

// ---------- choosing a file ----------

const EXTENSIONS = { "image/png": [".png"], "image/jpeg": [".jpg", ".jpeg"], "image/webp": [".webp"] };

/** Refuses, before any upload, what the server would refuse: wrong type, too many bytes, too many pixels. */
async function inspect(file) {
  const name = `“${file.name}”`;
  const byName = Object.entries(EXTENSIONS).find(([, exts]) => exts.some((e) => file.name.toLowerCase().endsWith(e)));
  const type = file.type || byName?.[0] || "";
  if (!config.accept.includes(type)) {
    const what = file.type ? `a ${file.type} file` : "not a recognised image type";
    throw new Error(`${name} is ${what}. This page takes PNG, JPEG or WebP images.`);
  }
  if (file.size > config.limits.max_upload_bytes) {
    throw new Error(
      `${name} is ${formatBytes(file.size)}; the server accepts files up to ${formatBytes(config.limits.max_upload_bytes)}.`,
    );
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`${name} could not be read as an image; the file may be damaged or not really a ${type}.`);
  }
  const { width, height } = bitmap;
  bitmap.close();
  if (width * height > config.limits.max_pixels) {
    throw new Error(
      `${name} is ${width} × ${height} pixels (${megapixels(width * height)}); ` +
        `the server accepts up to ${megapixels(config.limits.max_pixels)}.`,
    );
  }
  return { width, height };
}

async function chooseFile(file) {
  if (!file) return;
  show(ui.fileError, "");
  show(ui.error, "");
  let dims;
  try {
    dims = await inspect(file);
  } catch (err) {
    show(ui.fileError, err.message);
    setState(state.file || batch.loaded() ? ui.body.dataset.state : "empty");
    return;
  }
  abortAll();
  batch.clear();
  forgetResults();
  if (state.file) URL.revokeObjectURL(state.file.url);
  const stem = file.name.replace(/\.[^.]+$/, "") || "image";
  state.file = { file, name: file.name, stem, ...dims, url: URL.createObjectURL(file) };
  ui.fileInfo.hidden = false;
  $("info-name").textContent = file.name;
  $("info-name").title = file.name;
  $("info-size").textContent = formatBytes(file.size);
  $("info-dims").textContent = `${dims.width} × ${dims.height} px`;
  updateOutputSize();
  const out = outputSize(dims);
  compare.load(state.file.url, out.width, out.height);
  ui.viewer.style.setProperty("--aspect", `${dims.width} / ${dims.height}`);
  ui.viewer.dataset.mode = "input";
  ui.progress.hidden = true;
  setState("ready");
  refresh();
}

function updateOutputSize() {
  if (!state.file) return;
  const out = outputSize(state.file);
  $("info-output-label").textContent = `Output (×${scale()})`;
  $("info-output").textContent = `${out.width} × ${out.height} px`;
  $("info-output").title = megapixels(out.width * out.height);
}

function forgetResults() {
  for (const r of state.results.values()) URL.revokeObjectURL(r.url);
  state.results.clear();
  state.shownKey = null;
  compare.clearPreview();
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = null;
}

/** One file: the single-image page as above. Several: a batch, each file a job of its own. */
function chooseFiles(files) {
  if (files.length === 1) return chooseFile(files[0]);
  show(ui.fileError, "");
  show(ui.error, "");
  abortAll();
  forgetResults();
  if (state.file) URL.revokeObjectURL(state.file.url);
  state.file = null;
  ui.fileInfo.hidden = true;
  ui.progress.hidden = true;
  ui.download.hidden = true;
  ui.viewer.dataset.mode = "empty";
  setState("batch");
  refresh();
  return batch.load(files);
}

// ---------- batches ----------

const batch = createBatch({
  api,
  el: { section: $("batch"), list: $("batch-list"), title: $("batch-title"), downloadAll: $("download-all") },
  inspect,
  archiveMax: config.archive_max_jobs,
  onSelect: showBatchItem,
  onChange(item) {
    if (item && item === batch.selected() && item.state === "finished" && !item.shown) showBatchResult(item);
    refresh();
  },
  onError: (message) => show(ui.error, message),
});

/** The selected file of a batch in the comparison: its input now, its result once finished. */
function showBatchItem(item) {
  const out = item.output ?? outputSize(item);
  compare.load(item.url, out.width, out.height);
  ui.viewer.style.setProperty("--aspect", `${item.width} / ${item.height}`);
  ui.viewer.dataset.mode = "input";
  ui.tagAfter.textContent = "Result";
  ui.download.hidden = true;
  item.shown = false;
  if (item.state === "finished") showBatchResult(item);
}

async function showBatchResult(item) {
  item.shown = true;
  let r;
  try {
    r = await batch.result(item);
  } catch (err) {
    item.shown = false;
    show(ui.error, err.message);
    return;
  }
  if (batch.selected() !== item) return;
  const view = compare.state();
  if (view.width !== item.output.width || view.height !== item.output.height) {
    compare.load(item.url, item.output.width, item.output.height); // asked at another scale than first shown
  }
  compare.showAfter(r.url);
  ui.viewer.dataset.mode = "compare";
  ui.tagAfter.textContent = `ESRGAN · ${item.output.width} × ${item.output.height}`;
  ui.download.hidden = false;
  ui.download.href = r.url;
  ui.download.download = r.filename;
  ui.downloadText.textContent = `Download ${r.filename} (${formatBytes(r.blob.size)})`;
  ui.download.title = r.filename;
}

async function runBatch() {
  show(ui.error, "");
  ui.cancel.hidden = false;
  const run = batch.run(jobParams());
  refresh();
  try {
    await run;
  } catch (err) {
    show(ui.error, err instanceof Error ? err.message : String(err));
  } finally {
    ui.cancel.hidden = true;
    refresh();
  }
}

// Drop anywhere: the overlay shows while something is dragged over the window.
let dragDepth = 0;
const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
window.addEventListener("dragenter", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth += 1;
  ui.dropOverlay.hidden = false;
});
window.addEventListener("dragover", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) ui.dropOverlay.hidden = true;
});
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  ui.dropOverlay.hidden = true;
  const files = event.dataTransfer?.files;
  if (files?.length) chooseFiles([...files]);
});
ui.fileInput.addEventListener("change", () => {
  if (ui.fileInput.files.length) chooseFiles([...ui.fileInput.files]);
  ui.fileInput.value = "";
});

// ---------- the whole-image job ----------

async function runWhole() {
  if (batch.loaded()) return runBatch();
  if (!state.file || state.job) return;
  const a = alpha();
  const key = resultKey(a);
  if (state.results.has(key)) return showResult(key);
  const controller = new AbortController();
  state.job = { id: null, controller };
  show(ui.error, "");
  setState("uploading");
  progress({ label: "Uploading…", done: 0, total: 0 });
  ui.cancel.hidden = false;
  refresh();
  const started = performance.now();
  try {
    const { job } = await api.submit(state.file.file, state.file.name, jobParams(a), controller.signal);
    state.job.id = job.id;
    const end = await api.follow(job.id, (s) => progress(describeJob(s)), controller.signal);
    if (end.state === "cancelled") {
      progress({ label: "Cancelled.", done: 0, total: 0 });
      setState("cancelled");
      return;
    }
    if (end.state === "failed") throw new ApiError(plainJobError(end.error));
    const image = await api.result(job.id, controller.signal);
    const seconds = (performance.now() - started) / 1000;
    state.results.set(key, {
      ...image,
      url: URL.createObjectURL(image.blob),
      alpha: a,
      seconds,
      filename: image.filename || `${state.file.stem}_x${scale()}_a${alphaText(a)}.${extension(format())}`,
    });
    progress({ label: `Done in ${seconds.toFixed(1)} s`, done: 1, total: 1 });
    setState("finished");
    if (resultKey() === key) showResult(key);
    renderChips();
  } catch (err) {
    if (err instanceof Aborted) return;
    fail(err);
  } finally {
    if (state.job?.controller === controller) state.job = null;
    ui.cancel.hidden = true;
    refresh();
  }
}

const extension = (fmt) => (fmt === "jpeg" ? "jpg" : fmt);

/** Reads a job state into the progress line; the server reports tiles done/total and the place in the queue. */
function describeJob(s) {
  const done = s.progress?.done ?? 0;
  const total = s.progress?.total ?? 0;
  if (s.state === "queued") {
    const place = s.position;
    const label = place > 0 ? `Queued: ${place} job${place === 1 ? "" : "s"} ahead` : "Queued: starting next";
    return { label, done: 0, total: 0 };
  }
  if (s.state === "started") {
    return { label: total ? `Upscaling: tile ${done} of ${total}` : "Upscaling: loading the model…", done, total };
  }
  if (s.state === "finished") return { label: "Fetching the result…", done: 1, total: 1 };
  return { label: s.state, done, total };
}

function plainJobError(message) {
  return message ? `The server could not upscale this image: ${message}` : "The server could not upscale this image.";
}

function progress({ label, done, total }) {
  ui.progress.hidden = false;
  const percent = total ? Math.round((100 * done) / total) : 0;
  ui.progressFill.style.width = `${percent}%`;
  ui.progressBar.setAttribute("aria-valuenow", String(percent));
  ui.progressBar.classList.toggle("indeterminate", !total && ui.body.dataset.state !== "cancelled");
  ui.progressPercent.textContent = total ? `${percent}%` : "";
  ui.statusText.textContent = label;
}

function fail(err) {
  const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  show(ui.error, message);
  ui.progress.hidden = true;
  setState("error");
}

async function cancelJob() {
  if (batch.running()) {
    await batch.cancel();
    ui.cancel.hidden = true;
    return refresh();
  }
  const job = state.job;
  if (!job) return;
  job.controller.abort();
  state.job = null;
  progress({ label: "Cancelling…", done: 0, total: 0 });
  try {
    if (job.id) await api.cancel(job.id);
    progress({ label: "Cancelled.", done: 0, total: 0 });
    ui.progressBar.classList.remove("indeterminate");
    setState("cancelled");
  } catch (err) {
    fail(err);
  }
  ui.cancel.hidden = true;
  refresh();
}

function abortAll() {
  if (state.job) cancelJob();
  state.preview?.controller.abort();
  state.preview = null;
}

// ---------- results per alpha ----------

function showResult(key) {
  const r = state.results.get(key);
  if (!r) return;
  state.shownKey = key;
  compare.showAfter(r.url);
  compare.clearPreview();
  ui.viewer.dataset.mode = "compare";
  ui.tagAfter.textContent = modelAlpha() ? `ESRGAN · α ${alphaText(r.alpha)}` : model();
  ui.download.hidden = false;
  ui.download.href = r.url;
  ui.download.download = r.filename;
  ui.downloadText.textContent = `Download ${r.filename} (${formatBytes(r.blob.size)})`;
  ui.download.title = `${format().toUpperCase()}, ${formatBytes(r.blob.size)}, computed in ${r.seconds.toFixed(1)} s`;
  renderChips();
}

function renderChips() {
  const mine = [...state.results.entries()]
    .filter(([key]) => key.startsWith(`${model()}|${format()}|${scale()}|`))
    .sort((a, b) => a[1].alpha - b[1].alpha);
  ui.chips.replaceChildren(
    ...mine.map(([key, r]) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = modelAlpha() ? `α ${alphaText(r.alpha)}` : "result";
      chip.setAttribute("aria-pressed", String(key === state.shownKey));
      chip.addEventListener("click", () => {
        ui.alpha.value = String(r.alpha);
        onAlphaInput();
      });
      return chip;
    }),
  );
  ui.results.hidden = mine.length === 0;
}

// ---------- alpha and the quick preview ----------

/** The slider for the chosen model: a pair's labels and starting alpha, or disabled with the reason for a single one. */
function applyModelAlpha() {
  const info = modelAlpha();
  ui.alpha.disabled = !info;
  ui.alphaNote.hidden = Boolean(info);
  ui.alphaLow.parentElement.hidden = !info; // the two ends' labels
  if (!info) {
    ui.alphaName.textContent = "Blend";
    ui.alphaHelp.textContent = "";
    ui.alphaNote.textContent = `${model()} is a single network, not a pair of two to blend, so it has no alpha.`;
    ui.alpha.value = "0"; // one value while disabled, so its results are found again under one key
    return;
  }
  ui.alphaName.textContent = info.name[0].toUpperCase() + info.name.slice(1);
  ui.alphaLow.textContent = `0 · ${info.low}`;
  ui.alphaHigh.textContent = `${info.high} · 1`;
  ui.alphaHelp.textContent = `0: ${info.low}; 1: ${info.high}.`;
  ui.alpha.value = String(info.default);
}

function onAlphaInput() {
  const a = alpha();
  const info = modelAlpha();
  ui.alphaValue.textContent = info ? alphaText(a) : "–";
  const words = info ? (a < 0.34 ? info.low : a > 0.66 ? info.high : "between the two") : "no alpha";
  ui.alpha.setAttribute("aria-valuetext", info ? `${alphaText(a)} (${words})` : words);
  const key = resultKey(a);
  if (state.results.has(key)) showResult(key);
  else if (state.preview?.alpha !== a) compare.clearPreview();
  if (!state.job && ui.body.dataset.state !== "error") ui.progress.hidden = true;
  if (!state.results.has(key) && state.shownKey) {
    ui.tagAfter.textContent = `ESRGAN · α ${alphaText(state.results.get(state.shownKey).alpha)} (not α ${alphaText(a)} yet)`;
  }
  renderChips();
  refresh();
}

/** Upscales only the visible part of the input at the new alpha, and lays it over the area it covers. */
async function runPreview() {
  const a = alpha();
  if (!ui.previewMode.checked || !state.file || batch.loaded() || state.results.has(resultKey(a))) return;
  state.preview?.controller.abort();
  const controller = new AbortController();
  state.preview = { controller, alpha: a };
  const s = scale();
  const { width, height } = state.file;
  const visible = compare.visibleRect();
  const inner = centredBox(visible.x / s, visible.y / s, visible.w / s, visible.h / s, width, height);
  const outer = {
    x: Math.max(0, inner.x - PREVIEW_MARGIN),
    y: Math.max(0, inner.y - PREVIEW_MARGIN),
  };
  outer.w = Math.min(width, inner.x + inner.w + PREVIEW_MARGIN) - outer.x;
  outer.h = Math.min(height, inner.y + inner.h + PREVIEW_MARGIN) - outer.y;
  ui.viewer.classList.add("previewing");
  ui.tagAfter.textContent = `Previewing α ${alphaText(a)}…`;
  try {
    const crop = await cropPng(outer);
    const params = { ...jobParams(a), format: "png", wait: "true" };
    const answer = await api.submit(crop, `${state.file.stem}_crop.png`, params, controller.signal);
    let image = answer.image;
    if (!image) {
      const end = await api.follow(answer.job.id, () => {}, controller.signal);
      if (end.state !== "finished") throw new ApiError(plainJobError(end.error));
      image = await api.result(answer.job.id, controller.signal);
    }
    // Stale: the person moved on, or the whole image at this alpha arrived meanwhile.
    if (state.preview?.controller !== controller || alpha() !== a || state.results.has(resultKey(a))) return;
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(image.blob);
    const times = (r) => ({ x: r.x * s, y: r.y * s, w: r.w * s, h: r.h * s });
    compare.showPreview(state.previewUrl, times(outer), times(inner));
    ui.viewer.dataset.mode = "compare";
    const rest = state.shownKey ? `rest α ${alphaText(state.results.get(state.shownKey).alpha)}` : "rest not upscaled";
    ui.tagAfter.textContent = `Preview α ${alphaText(a)} in the outlined area · ${rest}`;
  } catch (err) {
    if (!(err instanceof Aborted)) fail(err);
  } finally {
    if (state.preview?.controller === controller) state.preview = null;
    ui.viewer.classList.remove("previewing");
    refresh();
  }
}

/** The largest box of at most PREVIEW_SIDE per side, centred in the visible area, in whole input pixels. */
function centredBox(x, y, w, h, width, height) {
  const bw = Math.max(1, Math.min(PREVIEW_SIDE, Math.floor(w)));
  const bh = Math.max(1, Math.min(PREVIEW_SIDE, Math.floor(h)));
  const bx = Math.min(width - bw, Math.max(0, Math.round(x + (w - bw) / 2)));
  const by = Math.min(height - bh, Math.max(0, Math.round(y + (h - bh) / 2)));
  return { x: bx, y: by, w: bw, h: bh };
}

async function cropPng(box) {
  const bitmap = await createImageBitmap(state.file.file, box.x, box.y, box.w, box.h);
  const canvas = document.createElement("canvas");
  canvas.width = box.w;
  canvas.height = box.h;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// ---------- API key prompt ----------

function askKey(message) {
  return new Promise((resolve) => {
    ui.keyMessage.textContent = message;
    ui.keyInput.value = "";
    const done = (value) => {
      ui.keyDialog.removeEventListener("close", onClose);
      $("key-cancel").removeEventListener("click", onCancel);
      if (ui.keyDialog.open) ui.keyDialog.close();
      resolve(value);
    };
    const onClose = () => done(ui.keyDialog.returnValue === "cancel" ? null : ui.keyInput.value.trim() || null);
    const onCancel = () => {
      ui.keyDialog.returnValue = "cancel";
      done(null);
    };
    ui.keyDialog.returnValue = "";
    ui.keyDialog.addEventListener("close", onClose);
    $("key-cancel").addEventListener("click", onCancel);
    ui.keyDialog.showModal();
    ui.keyInput.focus();
  });
}

$("key-button").addEventListener("click", () =>
  api.changeKey("Enter the API key for this server. It is kept for this browser tab only.").catch(() => {}),
);

// ---------- wiring ----------

/** Puts every control in the state that matches the data: what can be started, what is shown. */
function refresh() {
  if (batch.loaded()) {
    const ready = batch.ready();
    ui.start.disabled = batch.running() || ready === 0;
    if (batch.running()) ui.start.textContent = "Upscaling…";
    else if (!ready) ui.start.textContent = "Upscale";
    else {
      const images = ready === 1 ? "1 image" : `${ready} images`;
      ui.start.textContent = `Upscale ${images} ×${scale()}${atAlpha()}`;
    }
    return;
  }
  const cached = state.results.has(resultKey());
  ui.start.disabled = !state.file || Boolean(state.job) || cached;
  if (!state.file) ui.start.textContent = "Upscale";
  else if (cached) ui.start.textContent = modelAlpha() ? `Showing α ${alphaText(alpha())}` : "Showing the result";
  else if (state.job) ui.start.textContent = "Upscaling…";
  else ui.start.textContent = `Upscale ×${scale()}${atAlpha()}`;
}

function updateZoomLabel() {
  const { ratio, width } = compare.state();
  ui.zoomLevel.textContent = width ? `${Math.round(ratio * 100)}%` : "–";
}

ui.alpha.addEventListener("input", onAlphaInput);
let previewTimer = 0;
ui.alpha.addEventListener("change", () => {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(runPreview, PREVIEW_DEBOUNCE_MS);
});
function onScaleChange() {
  updateOutputSize();
  if (state.file) {
    const out = outputSize(state.file);
    compare.load(state.file.url, out.width, out.height);
    ui.viewer.dataset.mode = "input";
    state.shownKey = null;
  }
  onAlphaInput();
}
ui.model.addEventListener("change", () => {
  applyModelAlpha();
  fillScales();
  onScaleChange();
});
ui.scale.addEventListener("change", onScaleChange);
for (const radio of document.querySelectorAll('input[name="format"]')) radio.addEventListener("change", onAlphaInput);
ui.start.addEventListener("click", runWhole);
ui.cancel.addEventListener("click", cancelJob);
$("zoom-fit").addEventListener("click", () => compare.fit());
$("zoom-1").addEventListener("click", () => compare.actualSize());
$("zoom-in").addEventListener("click", () => compare.zoomIn());
$("zoom-out").addEventListener("click", () => compare.zoomOut());
compare.onChange(updateZoomLabel);
applyModelAlpha();
fillScales();
onAlphaInput();
document.documentElement.dataset.ready = "true";
