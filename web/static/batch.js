// Several images at once: each file becomes a job with the page's settings. A list shows each file's state,
// progress, output size and a download link; "Download all" fetches one zip of the finished results
// (GET jobs/archive, in groups of the server's limit). A file that is refused or fails shows its error in its own
// row and the others go on.
import { Aborted, POLL_MS, sleep } from "./api.js";

const ENDED = new Set(["finished", "failed", "cancelled"]);

/** Saves a blob under `filename` through a temporary link (the browser's own download, no new tab). */
export function saveFile(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * `el`: {section, list, title, downloadAll}. `inspect(file)` resolves to {width, height} or throws the page's
 * refusal. `onSelect(item)` shows an item in the comparison; `onChange(item?)` follows every change (item: the one
 * that changed); `onError(message)` reports a failed "download all".
 */
export function createBatch({ api, el, inspect, archiveMax, onSelect, onChange, onError }) {
  let items = [];
  let selected = null;
  let controller = null;

  function row(item) {
    const li = document.createElement("li");
    li.className = "batch-item";
    const name = document.createElement("button");
    name.type = "button";
    name.className = "batch-name ellipsis";
    name.textContent = item.name;
    name.title = item.name;
    name.addEventListener("click", () => select(item));
    const status = document.createElement("span");
    status.className = "batch-status";
    const track = document.createElement("div");
    track.className = "batch-track";
    track.setAttribute("role", "progressbar");
    track.setAttribute("aria-label", `Progress of ${item.name}`);
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "100");
    const fill = document.createElement("div");
    fill.className = "batch-fill";
    track.append(fill);
    const download = document.createElement("a");
    download.className = "batch-download";
    download.href = "#";
    download.hidden = true;
    download.addEventListener("click", (event) => {
      event.preventDefault();
      saveResult(item).catch((err) => onError(err.message));
    });
    const error = document.createElement("p");
    error.className = "batch-error";
    error.hidden = true;
    li.append(name, status, download, track, error);
    return { li, name, status, track, fill, download, error };
  }

  function label(item) {
    const size = item.output ?? (item.width ? { width: item.width, height: item.height } : null);
    const dims = size ? `${size.width} × ${size.height} px` : "";
    const done = item.progress?.done ?? 0;
    const total = item.progress?.total ?? 0;
    switch (item.state) {
      case "checking":
        return "Checking…";
      case "ready":
        return dims;
      case "uploading":
        return "Uploading…";
      case "queued":
        return item.position > 0 ? `Queued: ${item.position} ahead` : "Queued: starting next";
      case "started":
        return total ? `Upscaling: tile ${done} of ${total}` : "Upscaling…";
      case "finished":
        return `Done · ${dims}`;
      case "cancelled":
        return "Cancelled";
      default:
        return "Failed";
    }
  }

  function render(item) {
    const view = item.view;
    view.li.dataset.state = item.state;
    view.name.setAttribute("aria-pressed", String(item === selected));
    view.status.textContent = label(item);
    const total = item.progress?.total ?? 0;
    const percent = item.state === "finished" ? 100 : total ? Math.round((100 * item.progress.done) / total) : 0;
    view.fill.style.width = `${percent}%`;
    view.track.setAttribute("aria-valuenow", String(percent));
    view.track.hidden = !["uploading", "queued", "started", "finished"].includes(item.state);
    view.download.hidden = item.state !== "finished";
    view.download.textContent = item.filename ? `Download ${item.filename}` : "Download";
    view.error.textContent = item.error ?? "";
    view.error.hidden = !item.error;
    renderHead();
    onChange(item);
  }

  function set(item, changes) {
    Object.assign(item, changes);
    render(item);
  }

  /** A job state from the server onto its row. */
  function follow(item, job) {
    const error =
      job.state === "failed"
        ? `The server could not upscale this image${job.error ? `: ${job.error}` : "."}`
        : item.error;
    set(item, {
      state: job.state,
      progress: job.progress,
      position: job.position,
      output: job.output,
      filename: job.filename,
      error,
    });
  }

  function renderHead() {
    const finished = items.filter((i) => i.state === "finished").length;
    el.title.textContent = `${items.length} images · ${finished} done`;
    el.downloadAll.disabled = finished === 0;
    el.downloadAll.textContent = finished ? `Download all (${finished}) as zip` : "Download all";
  }

  function select(item) {
    if (!item.url) return;
    const before = selected;
    selected = item;
    onSelect(item);
    if (before) render(before);
    render(item);
  }

  async function load(files) {
    clear();
    el.section.hidden = false;
    items = files.map((file) => ({ file, name: file.name, state: "checking" }));
    for (const item of items) {
      item.view = row(item);
      el.list.append(item.view.li);
      render(item);
    }
    const mine = items;
    for (const item of mine) {
      let changes;
      try {
        changes = { ...(await inspect(item.file)), state: "ready", url: URL.createObjectURL(item.file) };
      } catch (err) {
        changes = { state: "failed", error: err.message };
      }
      if (items !== mine) {
        if (changes.url) URL.revokeObjectURL(changes.url); // another batch replaced this one meanwhile
        return;
      }
      set(item, changes);
      if (!selected && item.url) select(item);
    }
  }

  /** Submits every ready file with `params` and follows the jobs until each has ended. */
  async function run(params) {
    const todo = items.filter((i) => i.state === "ready");
    if (controller || !todo.length) return;
    controller = new AbortController();
    const { signal } = controller;
    let uploading = true;
    onChange();
    const upload = async () => {
      try {
        for (const item of todo) {
          if (signal.aborted) return;
          set(item, { state: "uploading", error: null });
          try {
            const { job } = await api.submit(item.file, item.name, params, signal);
            item.id = job.id;
            follow(item, job);
          } catch (err) {
            if (err instanceof Aborted) return;
            set(item, { state: "failed", error: err.message });
          }
        }
      } finally {
        uploading = false;
      }
    };
    const open = () => items.filter((i) => i.id && !ENDED.has(i.state));
    const poll = async () => {
      for (;;) {
        for (const item of open()) {
          try {
            follow(item, await api.job(item.id, signal));
          } catch (err) {
            if (err instanceof Aborted) return;
            set(item, { state: "failed", error: err.message });
          }
        }
        if (!uploading && !open().length) return;
        await sleep(POLL_MS, signal);
      }
    };
    try {
      await Promise.all([upload(), poll()]);
    } catch (err) {
      if (!(err instanceof Aborted)) throw err;
    } finally {
      controller = null;
      onChange();
    }
  }

  /** Stops following, and cancels every job that has not ended (a queued one never runs). */
  async function cancel() {
    controller?.abort();
    controller = null;
    for (const item of items) {
      if (item.state === "uploading") set(item, { state: "ready" });
      if (!item.id || ENDED.has(item.state)) continue;
      try {
        await api.cancel(item.id);
        set(item, { state: "cancelled" });
      } catch (err) {
        set(item, { state: "failed", error: err.message });
      }
    }
    onChange();
  }

  /** The item's result {blob, filename, url}, fetched once (two callers at once share the one request). */
  async function result(item) {
    item.fetching ??= api.result(item.id).then((image) => {
      item.result = { ...image, filename: image.filename || item.filename, url: URL.createObjectURL(image.blob) };
      return item.result;
    });
    try {
      return await item.fetching;
    } catch (err) {
      item.fetching = null;
      throw err;
    }
  }

  async function saveResult(item) {
    const r = await result(item);
    saveFile(r.blob, r.filename);
  }

  async function downloadAll() {
    const ids = items.filter((i) => i.state === "finished").map((i) => i.id);
    const groups = Math.ceil(ids.length / archiveMax);
    for (let g = 0; g < groups; g += 1) {
      const file = await api.archive(ids.slice(g * archiveMax, (g + 1) * archiveMax));
      const name = groups > 1 ? `esrgan-results-${g + 1}.zip` : file.filename || "esrgan-results.zip";
      saveFile(file.blob, name);
    }
  }

  el.downloadAll.addEventListener("click", () => {
    el.downloadAll.disabled = true;
    downloadAll()
      .catch((err) => onError(err.message))
      .finally(renderHead);
  });

  function clear() {
    controller?.abort();
    controller = null;
    for (const item of items) {
      if (item.url) URL.revokeObjectURL(item.url);
      if (item.result) URL.revokeObjectURL(item.result.url);
    }
    items = [];
    selected = null;
    el.list.replaceChildren();
    el.section.hidden = true;
  }

  return {
    load,
    run,
    cancel,
    clear,
    result,
    /** Whether a batch is loaded (the page is in batch mode). */
    loaded: () => items.length > 0,
    running: () => controller !== null,
    ready: () => items.filter((i) => i.state === "ready").length,
    selected: () => selected,
  };
}
