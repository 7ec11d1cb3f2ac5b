// The service's HTTP API as the page uses it: one fetch wrapper that adds the API key (asked once, kept in
// sessionStorage) and turns every failure into a sentence a person can act on.

const KEY_STORAGE = "esrgan.apiKey";
export const POLL_MS = 250;

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export class Aborted extends Error {
  constructor() {
    super("aborted");
    this.name = "Aborted";
  }
}

const FALLBACK = {
  400: "The server could not use this request.",
  401: "The server needs a valid API key.",
  403: "The API key was not accepted.",
  404: "The server no longer has this job; results expire after a while.",
  409: "The job is not finished yet.",
  413: "The file is larger than the server accepts.",
  415: "The server could not read this file as a supported image.",
  422: "The server refused these settings.",
  429: "The server is busy; try again in a moment.",
  500: "The server failed on this request (an internal error); try again, and tell its administrator if it repeats.",
  503: "The server's job queue is unavailable right now; try again in a moment.",
};

/** Reads a plain message from an error response: {detail: str}, FastAPI's {detail: [{msg}]}, or {message}. */
export async function errorMessage(response) {
  let text = "";
  try {
    const body = await response.clone().json();
    const detail = body.detail ?? body.message ?? body.error;
    if (typeof detail === "string") text = detail;
    else if (Array.isArray(detail)) text = detail.map((d) => describeValidation(d)).join("; ");
    else if (detail && typeof detail.message === "string") text = detail.message;
  } catch {
    text = "";
  }
  if (!text) text = FALLBACK[response.status] ?? `The server answered with an error (${response.status}).`;
  return text;
}

function describeValidation(item) {
  if (typeof item === "string") return item;
  const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "query" && p !== "body").join(".") : "";
  return where ? `${where}: ${item.msg}` : String(item.msg ?? item);
}

/**
 * Builds the client. `askKey(message)` shows the key prompt and resolves to the key, or null when the person
 * declines; it is only called when the server refuses a request (or when the page knows a key is required).
 */
export function createApi({ header = "X-API-Key", keyRequired = false, askKey }) {
  let key = sessionStorage.getItem(KEY_STORAGE) || "";

  async function ensureKey(message) {
    const entered = await askKey(message);
    if (!entered) throw new ApiError("This server needs an API key; none was given.", 401);
    key = entered;
    sessionStorage.setItem(KEY_STORAGE, key);
  }

  async function request(path, init = {}) {
    if (keyRequired && !key) await ensureKey("This server asks for an API key. It is kept for this browser tab only.");
    for (;;) {
      const headers = new Headers(init.headers || {});
      if (key) headers.set(header, key);
      let response;
      try {
        response = await fetch(path, { ...init, headers });
      } catch (err) {
        if (init.signal?.aborted) throw new Aborted();
        throw new ApiError("Could not reach the server. Check that it is running and that you are online.");
      }
      if (response.status === 401 || response.status === 403) {
        const why = await errorMessage(response);
        sessionStorage.removeItem(KEY_STORAGE);
        key = "";
        await ensureKey(`${why} Enter the API key for this server.`);
        continue;
      }
      if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
      return response;
    }
  }

  /** Sends an image; answers {job} (202, queued) or {image: {blob, filename}} when the server waited for it. */
  async function submit(blob, filename, params, signal) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
    }
    const form = new FormData();
    form.append("file", blob, filename);
    const response = await request(`upscale?${query}`, { method: "POST", body: form, signal });
    const type = response.headers.get("content-type") || "";
    if (type.startsWith("image/")) return { image: await readFile(response) };
    return { job: await response.json() };
  }

  async function job(id, signal) {
    return (await request(`jobs/${encodeURIComponent(id)}`, { signal, cache: "no-store" })).json();
  }

  async function result(id, signal) {
    // redirect=false: the API sends the image itself; following a redirect to an object store from a script would
    // need CORS rules on the bucket.
    return readFile(await request(`jobs/${encodeURIComponent(id)}/result?redirect=false`, { signal }));
  }

  async function cancel(id) {
    await request(`jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /** One zip of finished jobs' results: {blob, filename}. */
  async function archive(ids, signal) {
    return readFile(await request(`jobs/archive?ids=${ids.map(encodeURIComponent).join(",")}`, { signal }));
  }

  /** Polls a job until it ends, reporting each state; resolves with the final state. */
  async function follow(id, onUpdate, signal) {
    for (;;) {
      if (signal?.aborted) throw new Aborted();
      const state = await job(id, signal);
      onUpdate(state);
      if (["finished", "failed", "cancelled"].includes(state.state)) return state;
      await sleep(POLL_MS, signal);
    }
  }

  return {
    submit,
    job,
    result,
    cancel,
    archive,
    follow,
    changeKey: ensureKey,
  };
}

async function readFile(response) {
  const blob = await response.blob();
  return { blob, filename: filenameFrom(response.headers.get("content-disposition")) };
}

/** The download name from Content-Disposition (RFC 6266, filename* first), or "" when there is none. */
export function filenameFrom(disposition) {
  if (!disposition) return "";
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(disposition);
  if (star) return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
  const plain = /filename\s*=\s*("?)([^";]+)\1/i.exec(disposition);
  return plain ? plain[2].trim() : "";
}

/** Resolves after `ms`, or rejects with Aborted as soon as `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new Aborted());
      },
      { once: true },
    );
  });
}
