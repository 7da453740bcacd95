// The JSON API, reached with URLs relative to the page, so the console works at /console and under a
// stage prefix such as /api/console. The key lives in sessionStorage only: never in a URL, never logged.

const KEY = "segments.api-key";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  signIn(key) {
    sessionStorage.setItem(KEY, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The service answered ${status}.`);
    this.status = status;
    this.code = error.code || "error";
    this.details = error.details || {};
  }
}

/** One API call: `api("GET", "segments")`, `api("POST", "segments/preview", {criteria})`. */
export async function api(method, path, body, { key = session.key, signal, raw = false, contentType } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, signal, cache: "no-store" });
  const text = await response.text();
  let data = null;
  if (text && !raw) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return raw ? text : data;
}

/** A query string from the set parameters of `params`. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== "") search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Every page of a list route (up to `most` items). */
export async function all(path, most = 2000) {
  const items = [];
  let cursor = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${separator}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < most);
  return items;
}
