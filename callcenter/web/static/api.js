// How every page talks to the HTTP API: the one place that knows how a page authenticates.
//
// People sign in at /login with a user name and password; the server answers with an HttpOnly session
// cookie (SameSite=Strict) that rides along with every same-origin request (credentials "same-origin").
// No script can read it, and it never appears in a URL. When the server answers 401 (signed out,
// expired), the page goes to /login?next=<where it was>, and comes back after signing in.
//
// A page may still be given an API token (the QA page's "paste a token" path, for tools and tests): it
// is kept in sessionStorage (gone when the tab closes) and sent as "Authorization: Bearer", never in a
// URL; a 401 then is announced on `events` ("unauthorized") for the page to ask again.

const KEY = "callcenter.token";

export class ApiError extends Error {
  constructor(status, detail, retryAfter = 0) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;       // seconds, from a 429's Retry-After (0: none)
  }
}

export const auth = {
  token: () => sessionStorage.getItem(KEY) || "",
  set(token) { sessionStorage.setItem(KEY, token.trim()); },
  clear() { sessionStorage.removeItem(KEY); },
  has() { return Boolean(sessionStorage.getItem(KEY)); },
  /** "token" when a pasted API token is in use, else "cookie" (the signed-in session). */
  mode() { return this.has() ? "token" : "cookie"; },
};

function authHeaders() {
  const token = auth.token();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// A hint, not a secret: "this browser signed in and has not signed out" (localStorage, set by the sign-in
// page). It lets a page go straight to /login instead of asking the server and drawing a 401 in the console.
const HINT = "callcenter.signedIn";
export const signedIn = {
  mark() { localStorage.setItem(HINT, "1"); },
  clear() { localStorage.removeItem(HINT); },
  maybe() { return localStorage.getItem(HINT) === "1"; },
};

// Listeners learn that the credentials were refused (401).
export const events = new EventTarget();

/** The path to come back to after signing in, if it is a path on this site (else null). */
export function safeNext(next) {
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return null;
  if (/[\u0000-\u001f\u007f]/.test(next)) return null;
  let url;
  try { url = new URL(next, location.origin); } catch { return null; }
  if (url.origin !== location.origin || url.pathname === "/login" || url.pathname.startsWith("/api/")) return null;
  return url.pathname + url.search + url.hash;
}

/** The sign-in page's address, coming back to `next` (default: here). */
export function loginUrl(next = location.pathname + location.search + location.hash) {
  const back = safeNext(next);
  return back ? `/login?next=${encodeURIComponent(back)}` : "/login";
}

/** Leave for the sign-in page (unless already on it). */
export function goToLogin() {
  if (location.pathname !== "/login") location.assign(loginUrl());
}

async function request(path, { method = "GET", body, signal, accept = "application/json", redirect = true } = {}) {
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
    if (resp.status === 401) {
      events.dispatchEvent(new CustomEvent("unauthorized", { detail }));
      if (auth.mode() === "cookie") {
        signedIn.clear();
        if (redirect) goToLogin();
      }
    }
    throw new ApiError(resp.status, detail, Number(resp.headers.get("Retry-After")) || 0);
  }
  return resp;
}

/** GET/PUT/POST/DELETE a JSON API route; throws ApiError with the server's reason.
 *  `redirect: false` keeps a 401 from sending the page to /login (the sign-in page's own calls). */
export async function api(path, options = {}) {
  const resp = await request(path, options);
  return resp.status === 204 ? null : resp.json();
}

/** A URL an <audio>/<a> element can use for an API file route; call release() when done.
 *  Signed in with the cookie, that is the route itself (so <audio> streams it with Range requests);
 *  with a pasted token, a blob: URL of the fetched file (an element cannot send the header). */
export async function mediaUrl(path, { signal, accept = "*/*" } = {}) {
  if (auth.mode() === "cookie") return { url: path, release: () => {} };
  const resp = await request(path, { signal, accept });
  const url = URL.createObjectURL(await resp.blob());
  return { url, release: () => URL.revokeObjectURL(url) };
}

/** Who is signed in: {id, name, role, agent} (a 401 goes to /login unless `redirect: false`). */
export function session(options = {}) {
  return api("/api/session", options);
}

/** What a page calls first: the signed-in user, {id, name, role, agent}. Not signed in: the page goes to
 *  /login?next=<here> (and the promise never settles). */
export async function whoAmI() {
  if (auth.mode() === "cookie" && !signedIn.maybe()) {
    goToLogin();
    return new Promise(() => {});
  }
  return session();
}

/** Sign out (end the session, or forget the pasted token) and go to the sign-in page. */
export async function signOut() {
  signedIn.clear();
  if (auth.mode() === "token") auth.clear();
  else {
    try { await api("/api/session", { method: "DELETE", redirect: false }); } catch { /* gone already */ }
  }
  location.assign("/login");
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
