// How every page talks to the HTTP API. This module is the one place that knows how a page
// authenticates: today a bearer token the user pastes once, kept in sessionStorage (gone when the
// tab closes) and sent as "Authorization: Bearer"; never in a URL. When cookie sign-in arrives,
// change authHeaders() to return {} (the cookie rides along: credentials "same-origin") and let
// mediaUrl() return the URL itself, so <audio> streams it with Range requests.

const KEY = "callcenter.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export const auth = {
  token: () => sessionStorage.getItem(KEY) || "",
  set(token) { sessionStorage.setItem(KEY, token.trim()); },
  clear() { sessionStorage.removeItem(KEY); },
  has() { return Boolean(sessionStorage.getItem(KEY)); },
};

function authHeaders() {
  const token = auth.token();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Listeners learn that the token was refused (401): show the sign-in again.
export const events = new EventTarget();

async function request(path, { method = "GET", body, signal, accept = "application/json" } = {}) {
  const headers = { Accept: accept, ...authHeaders() };
  const init = { method, headers, signal, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (!resp.ok) {
    let detail = `${resp.status} ${resp.statusText}`;
    try {
      const data = await resp.json();
      if (typeof data.detail === "string") detail = data.detail;
      else if (Array.isArray(data.detail)) detail = data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    } catch { /* not JSON */ }
    if (resp.status === 401) events.dispatchEvent(new CustomEvent("unauthorized", { detail }));
    throw new ApiError(resp.status, detail);
  }
  return resp;
}

/** GET/PUT/POST a JSON API route; throws ApiError with the server's reason. */
export async function api(path, options = {}) {
  const resp = await request(path, options);
  return resp.status === 204 ? null : resp.json();
}

/** A URL an <audio>/<a> element can use for an API file route (a blob: URL; call release() when done). */
export async function mediaUrl(path, { signal, accept = "*/*" } = {}) {
  const resp = await request(path, { signal, accept });
  const url = URL.createObjectURL(await resp.blob());
  return { url, release: () => URL.revokeObjectURL(url) };
}

/** Build "path?k=v&..." leaving out empty values; arrays repeat the key. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
