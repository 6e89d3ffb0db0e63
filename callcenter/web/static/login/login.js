// The sign-in page: POST /api/session {name, password}; the server sets the HttpOnly session cookie.
// Afterwards the browser goes to ?next= if that is a path on this site, else to the user's own page.
// (No "are you signed in already?" probe: its 401 would be an error in every page test's console; signing in
// again simply replaces this browser's session.)
import { api, ApiError, safeNext, signedIn } from "../api.js";

const $ = (id) => document.getElementById(id);
const HOME = { agent: "/agent", supervisor: "/supervisor", admin: "/supervisor", qa: "/qa" };
const next = safeNext(new URLSearchParams(location.search).get("next"));
const destination = (user) => next || HOME[user.role] || "/qa";

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function minutes(seconds) {
  const m = Math.max(1, Math.ceil(seconds / 60));
  return `${m} minute${m > 1 ? "s" : ""}`;
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("name").value.trim();
  const password = $("password").value;
  if (!name || !password) {
    showError(!name ? "Enter your user name." : "Enter your password.");
    (!name ? $("name") : $("password")).focus();
    return;
  }
  $("submit").disabled = true;
  $("submit").textContent = "Signing in…";
  showError("");
  try {
    const user = await api("/api/session", { method: "POST", body: { name, password }, redirect: false });
    signedIn.mark();
    location.replace(destination(user));
    return;
  } catch (err) {
    $("password").value = "";
    $("password").focus();
    if (!(err instanceof ApiError)) showError("The server cannot be reached. Check the connection and try again.");
    else if (err.status === 401) showError("Wrong user name or password.");
    else if (err.status === 429) showError(`Too many failed sign-ins. Try again in ${minutes(err.retryAfter || 60)}.`);
    else showError(err.message);
  }
  $("submit").disabled = false;
  $("submit").textContent = "Sign in";
});

function capsLock(ev) {
  if (ev.getModifierState) $("caps").hidden = !ev.getModifierState("CapsLock");
}
$("password").addEventListener("keydown", capsLock);
$("password").addEventListener("keyup", capsLock);
$("password").addEventListener("blur", () => { $("caps").hidden = true; });
