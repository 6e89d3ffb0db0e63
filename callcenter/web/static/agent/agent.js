// The agent desk (/agent): the agent's state, the call the ACD offers, the conversation's controls and
// the wrap-up. Everything live comes over the desk WebSocket (./desk.js, protocol in docs/desk.md);
// the call's audio is WebRTC (./rtc.js); HTTP (../api.js, the session cookie) only for who we are and
// the transfer picker. The DOM hooks tests use (ids, data-testid, data-state) are listed in docs/pages.md.
import { api, ApiError, loginUrl, session, signOut } from "../api.js";
import { DeskClient, DeskError } from "./desk.js";
import { RtcAudio } from "./rtc.js";
import { clock, errorBanner, esc, hhmm, nowS, pad, reasonText, Ringer } from "./ui.js";

const $ = (id) => document.getElementById(id);
const STATE_LABELS = {
  logged_out: "Logged out", available: "Available", reserved: "Ringing", on_call: "On call",
  wrap_up: "Wrap-up", break: "Break", unknown: "—",
};
const DISPOSITIONS = [
  ["resolved", "Resolved"], ["follow_up", "Follow-up needed"], ["escalated", "Escalated"], ["sale", "Sale"],
  ["info", "Information given"], ["complaint", "Complaint"], ["wrong_number", "Wrong number"], ["no_answer", "Silent / dropped"],
];

const S = {
  me: null,
  agent: "",
  acd: { state: "unknown", reason: "", pending: "", since: Date.now() / 1000 },
  phase: "none",          // none | ringing | connected | wrapup
  offer: null,            // the offer message being rung
  call: null,             // {call_id, queue, caller, customer, variables, started_at, held, muted, consult}
  wrap: null,             // {call_id, ends_at, by, disposition}
  sent: new Map(),        // seq -> what the message was for (to say what an error refers to)
  directory: null,        // {queues: [...], agents: [...]} for the transfer picker, or {error}
  xferMode: "blind",      // blind | consult
  xferKind: "queue",
  recent: [],             // this session's calls, newest first
};
const desk = new DeskClient();
const rtc = new RtcAudio({ audio: $("remote-audio") });
window.__desk = { desk, rtc, state: S };   // for tests and for a curious agent's console (nothing secret)

// -- formatting ---------------------------------------------------------------------------------------------------
function shortDate(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  const today = new Date();
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === today.toDateString()) return `today ${time}`;
  return d.getFullYear() === today.getFullYear() ? `${d.toLocaleString("en", { month: "short" })} ${d.getDate()} ${time}`
    : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// -- errors and the activity log ---------------------------------------------------------------------------------
const showError = errorBanner();

function log(text, kind = "") {
  const li = document.createElement("li");
  li.className = kind;
  li.innerHTML = `<span class="t">${hhmm()}</span><span class="x">${esc(text)}</span>`;
  $("log").prepend(li);
  while ($("log").children.length > 200) $("log").lastChild.remove();
}

/** Send a desk message, remembering what it was for; a failure to send is shown, never thrown. */
function send(type, fields, what) {
  try {
    const seq = desk.send(type, fields);
    S.sent.set(seq, what || type);
    if (S.sent.size > 100) S.sent.delete(S.sent.keys().next().value);
    return seq;
  } catch (err) {
    showError(err instanceof DeskError ? `${what || type}: ${err.message}` : String(err));
    return 0;
  }
}

// -- the agent's state ------------------------------------------------------------------------------------------
function applyState(st) {
  if (!st) return;
  if (typeof st === "string") st = { state: st };
  const prev = S.acd.state;
  S.acd = { state: st.state || "unknown", reason: st.reason || "", pending: st.pending || "",
    since: typeof st.since === "number" ? st.since : nowS() };
  if (prev !== S.acd.state && prev !== "unknown") {
    log(`State: ${STATE_LABELS[S.acd.state] || S.acd.state}${S.acd.reason ? ` (${reasonText(S.acd.reason)})` : ""}`);
  }
  if (S.phase === "wrapup" && prev === "wrap_up" && S.acd.state !== "wrap_up") {
    $("wrap-left").textContent = "wrap-up time over";
  }
  renderState();
  renderIdle();
}

function renderState() {
  const { state, reason, pending } = S.acd;
  $("acd-state").dataset.state = state;
  $("state-label").textContent = STATE_LABELS[state] || state;
  $("state-reason").textContent = state === "break" && reason ? reasonText(reason) : "";
  $("state-pending").hidden = !pending;
  $("state-pending").textContent = pending
    ? `then ${pending === "logged_out" ? "log out" : `${STATE_LABELS[pending] || pending}`}${pending === "break" && reason ? ` (${reasonText(reason)})` : ""} after this call`
    : "";
  const up = desk.connected;
  const busy = ["reserved", "on_call", "wrap_up"].includes(state);
  $("btn-available").disabled = !up || (state === "available" && !pending) || (busy && !pending) || state === "unknown";
  $("btn-break").disabled = !up || state === "logged_out" || state === "unknown"
    || (state === "break" && reason === $("break-reason").value) || (pending === "break");
  $("btn-logout").disabled = !up || state === "logged_out" || state === "unknown" || pending === "logged_out";
  $("break-reason").disabled = !up || state === "logged_out" || state === "unknown";
  $("btn-available").classList.toggle("on", state === "available");
  $("btn-break").classList.toggle("on", state === "break");
  $("btn-logout").classList.toggle("on", state === "logged_out");
}

$("btn-available").addEventListener("click", () => {
  rtc.microphone().catch((err) => showError(`Microphone: ${err.message}`));   // ask now, not when the call rings
  const { state, pending } = S.acd;
  const action = state === "logged_out" || pending === "logged_out" ? "login" : "resume";
  send("state", { action, reason: "" }, "Available");
});
$("btn-break").addEventListener("click", () => {
  send("state", { action: "pause", reason: $("break-reason").value }, "Break");
});
$("break-reason").addEventListener("change", renderState);
$("btn-logout").addEventListener("click", () => send("state", { action: "logout", reason: "" }, "Log out"));

// -- idle panel ---------------------------------------------------------------------------------------------------
function renderIdle() {
  const idle = S.phase === "none";
  $("idle").hidden = !idle;
  $("call").hidden = idle;
  if (!idle) return;
  const { state, reason } = S.acd;
  let title, sub;
  if (!desk.welcome) [title, sub] = [desk.status === "closed" ? "Not connected" : "Connecting to the desk…", desk.lastError];
  else if (state === "available") [title, sub] = ["Waiting for a call", "Calls ring here. Keep this tab open; the microphone is used only during calls."];
  else if (state === "break") [title, sub] = [`On break${reason ? ` · ${reasonText(reason)}` : ""}`, "No calls are offered to you. Press Available to take calls again."];
  else if (state === "logged_out") [title, sub] = ["You are logged out", "Press Available to start taking calls."];
  else [title, sub] = [STATE_LABELS[state] || state, ""];
  $("idle").dataset.state = state;
  $("idle-title").textContent = title;
  $("idle-sub").textContent = sub || "";
}

// -- the call card ------------------------------------------------------------------------------------------------
function setPhase(phase) {
  S.phase = phase;
  $("call").dataset.phase = phase;
  $("ring").hidden = phase !== "ringing";
  $("controls").hidden = phase !== "connected";
  $("wrapup").hidden = phase !== "wrapup";
  $("call-phase").textContent = { ringing: "Incoming call", connected: "On call", wrapup: "Call ended" }[phase] || "";
  document.body.classList.toggle("ringing", phase === "ringing");
  if (phase !== "ringing") ringer.stop();
  if (phase !== "connected") { closeDrawers(); $("consulting").hidden = true; }
  renderIdle();
}

function renderCallHead(c) {
  $("caller-number").textContent = c.caller || "Unknown number";
  const cust = c.customer;
  $("caller-name").textContent = cust && cust.name ? cust.name : cust ? "Known number, no name" : "No customer profile";
  $("caller-name").classList.toggle("muted", !(cust && cust.name));
  const tier = cust ? Number(cust.vip_tier || 0) : 0;
  $("caller-vip").hidden = !tier;
  $("caller-vip").textContent = tier ? `VIP ${tier}` : "";
  $("call-queue").textContent = c.queue || "—";
  $("call-id").textContent = c.call_id ? c.call_id.slice(0, 8) : "—";
  $("call-id").title = c.call_id || "";
  renderCustomer(c);
  renderVariables(c.variables);
}

function renderCustomer(c) {
  const cust = c && c.customer;
  if (!c) {
    $("customer").innerHTML = '<div class="empty">No call.</div>';
    $("cust-known").textContent = "";
    return;
  }
  $("cust-known").textContent = cust ? (cust.known === false ? "number seen before" : "profile") : "unknown";
  const calls = (cust && (cust.last_calls || cust.calls)) || [];
  const rows = calls.slice(0, 5).map((k) => `<tr>
      <td>${esc(shortDate(k.started_at))}</td><td>${esc(k.queue || "—")}</td><td>${esc(k.agent || "—")}</td>
      <td>${esc(k.disposition || (k.ended_at ? "" : "in progress"))}</td></tr>`).join("");
  const tier = cust ? Number(cust.vip_tier || 0) : 0;
  $("customer").innerHTML = `
    <div class="cust-id">
      <div class="avatar" aria-hidden="true">${esc(((cust && cust.name) || "?").trim().charAt(0).toUpperCase() || "?")}</div>
      <div class="cust-name">
        <div class="n" data-testid="customer-name">${esc((cust && cust.name) || "Unknown caller")}</div>
        <div class="muted mono">${esc(c.caller || "")}</div>
      </div>
      ${tier ? `<span class="vip" data-testid="customer-vip">VIP ${tier}</span>` : ""}
    </div>
    <dl class="kv">
      ${cust && cust.language ? `<dt>Language</dt><dd>${esc(cust.language)}</dd>` : ""}
      ${cust && cust.last_agent ? `<dt>Last agent</dt><dd>${esc(cust.last_agent)}</dd>` : ""}
      ${cust && cust.notes ? `<dt>Notes</dt><dd class="notes">${esc(cust.notes)}</dd>` : ""}
    </dl>
    <div class="subhead"><h3>Last calls</h3><span class="count">${calls.length || ""}</span></div>
    ${calls.length ? `<table class="grid mini" data-testid="last-calls"><thead><tr><th>When</th><th>Queue</th><th>Agent</th><th>Outcome</th></tr></thead><tbody>${rows}</tbody></table>`
      : '<div class="empty small">No earlier calls.</div>'}`;
}

function isMasked(v) {
  if (v && typeof v === "object") return Boolean(v.masked || v.sensitive);
  return typeof v === "string" && /[*•]{3,}/.test(v);
}
function varValue(v) {
  if (v && typeof v === "object" && "value" in v) return v.value;
  return typeof v === "object" && v !== null ? JSON.stringify(v) : v;
}
function renderVariables(vars) {
  const entries = Object.entries(vars || {});
  if (!entries.length) {
    $("variables").innerHTML = `<div class="empty">${S.call ? "Nothing collected." : "No call."}</div>`;
    return;
  }
  $("variables").innerHTML = `<table class="vars"><tbody>${entries.map(([k, v]) => {
    const masked = isMasked(v);
    const shown = masked && !/[*•]/.test(String(varValue(v) ?? "")) ? "••••••" : varValue(v);
    return `<tr class="${masked ? "masked" : ""}" data-var="${esc(k)}" data-masked="${masked}"><th>${esc(reasonText(k))}</th>
      <td class="mono">${esc(shown)}${masked ? '<span class="lock" title="Sensitive: masked">masked</span>' : ""}</td></tr>`;
  }).join("")}</tbody></table>`;
}

// -- ringing ------------------------------------------------------------------------------------------------------
const ringer = new Ringer();

function onOffer(msg) {
  if (S.phase === "wrapup" && S.wrap) log(`Wrap-up of ${S.call && S.call.caller ? S.call.caller : "the last call"} was not saved`, "warn");
  S.offer = { ...msg, received: nowS() };
  S.call = { call_id: msg.call_id, queue: msg.queue, caller: msg.caller, customer: msg.customer,
    variables: msg.variables || {}, started_at: 0, held: false, muted: false, consult: null };
  renderCallHead(S.call);
  setPhase("ringing");
  $("btn-answer").disabled = false;
  $("btn-reject").disabled = false;
  ringer.start();
  log(`Incoming call from ${msg.caller || "unknown"}${msg.queue ? ` (${msg.queue})` : ""}`, "ring");
  tick();
}

$("btn-answer").addEventListener("click", () => {
  if (!S.offer) return;
  rtc.microphone().catch((err) => showError(`Microphone: ${err.message}`));
  if (send("answer", { offer: S.offer.offer }, "Answer")) {
    $("btn-answer").disabled = true;
    $("btn-reject").disabled = true;
    $("call-phase").textContent = "Connecting…";
    ringer.stop();
  }
});
$("btn-reject").addEventListener("click", () => {
  if (!S.offer) return;
  if (send("reject", { offer: S.offer.offer }, "Reject")) {
    log(`Rejected the call from ${S.offer.caller || "unknown"}`);
    endOffer();
  }
});

function endOffer() {
  S.offer = null;
  if (S.phase === "ringing") {
    S.call = null;
    renderCustomer(null);
    renderVariables({});
    setPhase("none");
  }
}

// -- in the call ----------------------------------------------------------------------------------------------
function onConnected(msg) {
  if (!S.call || S.call.call_id !== msg.call_id) {
    S.call = { call_id: msg.call_id, queue: msg.queue || "", caller: msg.caller || "", customer: msg.customer || null,
      variables: msg.variables || {}, held: false, muted: false, consult: null };
    renderCallHead(S.call);
  }
  S.offer = null;
  S.call.started_at = typeof msg.started_at === "number" ? msg.started_at : nowS();
  setPhase("connected");
  renderFlags();
  log(`Connected to ${S.call.caller || "the caller"}`, "ok");
}

function renderFlags() {
  const c = S.call;
  if (!c) return;
  $("btn-hold").textContent = c.held ? "Resume" : "Hold";
  $("btn-hold").setAttribute("aria-pressed", String(c.held));
  $("btn-hold").classList.toggle("on", c.held);
  $("btn-mute").textContent = c.muted ? "Unmute" : "Mute";
  $("btn-mute").setAttribute("aria-pressed", String(c.muted));
  $("btn-mute").classList.toggle("on", c.muted);
  const flags = [];
  if (c.held) flags.push('<span class="flag hold" data-testid="flag-held">On hold — the caller hears music</span>');
  if (c.muted) flags.push('<span class="flag mute" data-testid="flag-muted">Muted — the caller cannot hear you</span>');
  if (c.monitor && c.monitor !== "off") flags.push(`<span class="flag monitor" data-testid="flag-monitor">Supervisor: ${esc(c.monitor)}</span>`);
  $("call-flags").innerHTML = flags.join("");
  const consulting = Boolean(c.consult);
  for (const id of ["btn-transfer", "btn-consult", "btn-hold"]) $(id).disabled = consulting;
}

$("btn-hangup").addEventListener("click", () => { if (S.call) send("hangup", { call_id: S.call.call_id }, "Hang up"); });
$("btn-hold").addEventListener("click", () => {
  if (S.call) send(S.call.held ? "resume" : "hold", { call_id: S.call.call_id }, S.call.held ? "Resume" : "Hold");
});
$("btn-mute").addEventListener("click", () => {
  if (S.call) send("mute", { call_id: S.call.call_id, on: !S.call.muted }, S.call.muted ? "Unmute" : "Mute");
});

function closeDrawers() {
  $("keypad").hidden = true;
  $("transfer").hidden = true;
  for (const id of ["btn-keypad", "btn-transfer", "btn-consult"]) {
    $(id).setAttribute("aria-pressed", "false");
    $(id).classList.remove("on");
  }
}
function toggleDrawer(drawer, button) {
  const open = $(button).getAttribute("aria-pressed") !== "true";
  closeDrawers();
  if (!open) return false;
  $(drawer).hidden = false;
  $(button).setAttribute("aria-pressed", "true");
  $(button).classList.add("on");
  return true;
}

// DTMF pad
$("btn-keypad").addEventListener("click", () => toggleDrawer("keypad", "btn-keypad"));
function dtmf(digit) {
  if (!S.call || S.phase !== "connected") return;
  if (send("dtmf", { call_id: S.call.call_id, digits: digit }, `Key ${digit}`)) {
    $("dtmf-sent").textContent = ($("dtmf-sent").textContent + digit).slice(-32);
    const key = document.querySelector(`#pad [data-digit="${CSS.escape(digit)}"]`);
    if (key) { key.classList.add("hit"); setTimeout(() => key.classList.remove("hit"), 150); }
  }
}
$("pad").addEventListener("click", (ev) => {
  const key = ev.target.closest("[data-digit]");
  if (key) dtmf(key.dataset.digit);
});
document.addEventListener("keydown", (ev) => {
  if ($("keypad").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.closest("input, textarea, select")) return;
  if (/^[0-9*#]$/.test(ev.key)) { ev.preventDefault(); dtmf(ev.key); }
});

// Transfer picker (blind or consult)
async function loadDirectory() {
  if (S.directory && !S.directory.error) return;
  const [dir] = await Promise.allSettled([api("/api/directory")]);
  const queues = dir, agents = dir;
  S.directory = {
    queues: dir.status === "fulfilled" ? dir.value.queues : null,
    agents: dir.status === "fulfilled" ? dir.value.agents.filter((a) => a.id !== S.agent) : null,
  };
  const fill = (sel, items, empty) => {
    sel.innerHTML = "";
    if (!items || !items.length) sel.add(new Option(empty, ""));
    for (const [value, label] of items || []) sel.add(new Option(label, value));
  };
  fill($("xfer-queue"), S.directory.queues && S.directory.queues.map((q) => [q, q]), "No queues");
  fill($("xfer-agent"), S.directory.agents && S.directory.agents.map((a) => [a.id, a.name ? `${a.name} (${a.id})` : a.id]), "No other agents");
  const refused = [queues, agents].find((r) => r.status === "rejected");
  if (refused) {
    const why = refused.reason instanceof ApiError && refused.reason.status === 403
      ? "the lists of queues and agents are not open to your role: type queue:NAME or agent:ID under Number"
      : `could not load the lists (${refused.reason.message})`;
    $("xfer-hint").textContent = why;
    if (!S.directory.queues && !S.directory.agents) setKind("number");
  }
}
function setKind(kind) {
  S.xferKind = kind;
  for (const tab of document.querySelectorAll(".tabs .tab")) tab.classList.toggle("on", tab.dataset.kind === kind);
  $("xfer-queue").hidden = kind !== "queue";
  $("xfer-agent").hidden = kind !== "agent";
  $("xfer-number").hidden = kind !== "number";
}
for (const tab of document.querySelectorAll(".tabs .tab")) tab.addEventListener("click", () => setKind(tab.dataset.kind));
function openTransfer(mode, button) {
  S.xferMode = mode;
  if (!toggleDrawer("transfer", button)) return;
  $("xfer-title").textContent = mode === "blind" ? "Blind transfer" : "Consult first (attended transfer)";
  $("btn-xfer-go").textContent = mode === "blind" ? "Transfer" : "Call";
  setKind(S.xferKind);
  loadDirectory().catch((err) => { $("xfer-hint").textContent = err.message; });
}
$("btn-transfer").addEventListener("click", () => openTransfer("blind", "btn-transfer"));
$("btn-consult").addEventListener("click", () => openTransfer("consult", "btn-consult"));
$("btn-xfer-close").addEventListener("click", closeDrawers);
function transferTarget() {
  if (S.xferKind === "queue") return $("xfer-queue").value ? `queue:${$("xfer-queue").value}` : "";
  if (S.xferKind === "agent") return $("xfer-agent").value ? `agent:${$("xfer-agent").value}` : "";
  return $("xfer-number").value.trim();
}
$("btn-xfer-go").addEventListener("click", () => {
  const target = transferTarget();
  if (!S.call) return;
  if (!target) { showError("Transfer: choose where to (a queue, an agent or a number)"); return; }
  const type = S.xferMode === "blind" ? "transfer" : "consult";
  if (send(type, { call_id: S.call.call_id, target }, S.xferMode === "blind" ? `Transfer to ${target}` : `Consult ${target}`)) {
    log(`${S.xferMode === "blind" ? "Transferring" : "Consulting"} ${target}…`);
    closeDrawers();
  }
});
$("xfer-number").addEventListener("keydown", (ev) => { if (ev.key === "Enter") $("btn-xfer-go").click(); });
$("btn-consult-complete").addEventListener("click", () => { if (S.call) send("complete_transfer", { call_id: S.call.call_id }, "Complete transfer"); });
$("btn-consult-cancel").addEventListener("click", () => { if (S.call) send("cancel_transfer", { call_id: S.call.call_id }, "Cancel transfer"); });

function onTransferState(msg) {
  if (!S.call || msg.call_id !== S.call.call_id) return;
  const target = msg.target || "";
  if (msg.state === "consulting") {
    S.call.consult = target;
    $("consult-target").textContent = target;
    $("consulting").hidden = false;
    log(`Consulting ${target}`);
  } else {
    S.call.consult = null;
    $("consulting").hidden = true;
    if (msg.state === "completed") log(`Transferred to ${target}`, "ok");
    else if (msg.state === "canceled") log(`Consultation with ${target} ended: back with the caller`);
    else if (msg.state === "failed") {
      showError(`Transfer to ${target} failed${msg.reason ? `: ${msg.reason}` : ""}`);
      log(`Transfer to ${target} failed${msg.reason ? ` (${msg.reason})` : ""}`, "bad");
    }
  }
  renderFlags();
}

// -- wrap-up ------------------------------------------------------------------------------------------------------
function onCallEnded(msg) {
  if (S.offer && S.offer.call_id === msg.call_id && S.phase === "ringing") { endOffer(); return; }
  if (!S.call || S.call.call_id !== msg.call_id) return;
  rtc.close(msg.call_id);
  const talked = S.call.started_at ? nowS() - S.call.started_at : 0;
  const by = msg.by ? { agent: "you hung up", caller: "the caller hung up", transfer: "transferred",
    lost: "your connection was lost", system: "ended by the system" }[msg.by] || msg.by : "";
  log(`Call ended after ${clock(talked)}${by ? ` (${by})` : ""}`);
  S.wrap = { call_id: msg.call_id, ends_at: msg.wrap_up_s > 0 ? nowS() + msg.wrap_up_s : 0, disposition: "" };
  S.recent.unshift({ call_id: msg.call_id, at: S.call.started_at || nowS(), caller: S.call.caller,
    name: S.call.customer && S.call.customer.name, queue: S.call.queue, talk: talked, disposition: "", note: "", by });
  renderRecent();
  $("wrap-ended").textContent = `${clock(talked)} with ${S.call.caller || "the caller"}${by ? ` · ${by}` : ""}`;
  $("wrap-note").value = "";
  renderDispositions();
  setPhase("wrapup");
  $("wrap-left").textContent = "";
  tick();
}

function renderDispositions() {
  const codes = (desk.welcome && Array.isArray(desk.welcome.dispositions) && desk.welcome.dispositions.length)
    ? desk.welcome.dispositions.map((d) => (Array.isArray(d) ? d : typeof d === "string" ? [d, reasonText(d)] : [d.code, d.label || d.code]))
    : DISPOSITIONS;
  $("dispositions").innerHTML = codes.map(([code, label]) =>
    `<button type="button" class="disp" role="radio" aria-checked="false" data-code="${esc(code)}" data-testid="disp-${esc(code)}">${esc(label)}</button>`).join("");
  $("btn-wrap-done").disabled = true;
  $("wrap-hint").textContent = "Pick a disposition.";
}
$("dispositions").addEventListener("click", (ev) => {
  const b = ev.target.closest(".disp");
  if (!b || !S.wrap) return;
  S.wrap.disposition = b.dataset.code;
  for (const d of $("dispositions").children) d.setAttribute("aria-checked", String(d === b));
  $("btn-wrap-done").disabled = false;
  $("wrap-hint").textContent = "The note is saved with the call.";
});
$("wrapup").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!S.wrap || !S.wrap.disposition) return;
  const fields = { call_id: S.wrap.call_id, disposition: S.wrap.disposition, note: $("wrap-note").value.trim() };
  if (send("wrap_up", fields, "Wrap-up")) {
    S.lastWrap = { ...S.wrap, note: fields.note, call: S.call };
    if (S.recent[0] && S.recent[0].call_id === fields.call_id) {
      S.recent[0].disposition = fields.disposition;
      S.recent[0].note = fields.note;
      renderRecent();
    }
    log(`Wrap-up saved: ${reasonText(fields.disposition)}`);
    S.wrap = null;
    S.call = null;
    renderCustomer(null);
    renderVariables({});
    setPhase("none");
  }
});

function renderRecent() {
  const label = (code) => { const d = DISPOSITIONS.find(([c]) => c === code); return d ? d[1] : reasonText(code); };
  $("recent").tBodies[0].innerHTML = S.recent.slice(0, 100).map((r) => `<tr data-call="${esc(r.call_id)}">
    <td class="time">${hhmm(new Date(r.at * 1000)).slice(0, 5)}</td><td class="mono">${esc(r.caller || "unknown")}</td>
    <td>${esc(r.name || "—")}</td><td>${esc(r.queue || "—")}</td><td class="num">${clock(r.talk)}</td>
    <td>${r.disposition ? esc(label(r.disposition)) : '<span class="muted">not wrapped up</span>'}</td>
    <td title="${esc(r.note)}">${esc(r.note || "")}</td></tr>`).join("");
  $("recent-empty").hidden = S.recent.length > 0;
  $("recent-count").textContent = S.recent.length ? String(S.recent.length) : "";
}

// -- the desk's messages --------------------------------------------------------------------------------------------
desk.on("welcome", (msg) => {
  S.agent = msg.agent || S.agent;
  $("who-agent").textContent = S.agent && S.me && S.agent !== S.me.name ? `agent ${S.agent}` : msg.role || "";
  if (msg.state) applyState(msg.state);
  log(desk.session && msg.resumed ? "Reconnected: session resumed" : "Connected to the desk");
  renderState();
  renderIdle();
});
desk.on("agent_state", applyState);
desk.on("offer", onOffer);
desk.on("offer_canceled", (msg) => {
  if (!S.offer || (msg.offer !== undefined && msg.offer !== S.offer.offer)) return;
  const why = { timeout: "not answered in time", taken: "another agent took it", abandoned: "the caller hung up" }[msg.reason] || reasonText(msg.reason);
  log(`Missed call from ${S.offer.caller || "unknown"}${why ? `: ${why}` : ""}`, "warn");
  endOffer();
});
desk.on("rtc_offer", async (msg) => {
  try {
    const sdp = await rtc.answer(msg.call_id, msg.sdp);
    send("rtc_answer", { call_id: msg.call_id, sdp }, "Audio");
  } catch (err) {
    showError(`Audio: ${err.message}`);
    log(`Audio could not start: ${err.message}`, "bad");
  }
});
desk.on("connected", onConnected);
desk.on("held", (msg) => {
  if (!S.call || msg.call_id !== S.call.call_id) return;
  S.call.held = Boolean(msg.held);
  log(S.call.held ? "Caller on hold" : "Caller back from hold");
  renderFlags();
});
desk.on("muted", (msg) => {
  if (!S.call || msg.call_id !== S.call.call_id) return;
  S.call.muted = Boolean(msg.muted);
  rtc.setMuted(S.call.muted);
  renderFlags();
});
desk.on("transfer_state", onTransferState);
desk.on("call_ended", onCallEnded);
desk.on("monitor_state", (msg) => {
  if (!S.call || msg.call_id !== S.call.call_id) return;
  S.call.monitor = msg.mode;
  renderFlags();
});
desk.on("error", (msg) => {
  const what = msg.ref ? S.sent.get(msg.ref) : "";
  const text = `${what ? `${what}: ` : ""}${msg.message || msg.code || "error"}`;
  showError(text);
  log(text, "bad");
  if (what === "Answer" && S.phase === "ringing") {
    $("btn-answer").disabled = false;
    $("btn-reject").disabled = false;
    $("call-phase").textContent = "Incoming call";
  }
  if (what === "Wrap-up" && S.lastWrap && S.phase === "none") {   // bring the form back, note and all
    S.wrap = { call_id: S.lastWrap.call_id, ends_at: S.lastWrap.ends_at, disposition: S.lastWrap.disposition };
    S.call = S.lastWrap.call;
    if (S.call) renderCallHead(S.call);
    renderDispositions();
    $("wrap-note").value = S.lastWrap.note;
    setPhase("wrapup");
  }
});
rtc.addEventListener("error", (ev) => showError(`Audio: ${ev.detail}`));

desk.addEventListener("status", (ev) => {
  const { status, attempt, error } = ev.detail;
  $("conn").dataset.status = status;
  const text = {
    connecting: "Connecting…", connected: "Connected", closed: "Disconnected",
    reconnecting: `Reconnecting${attempt > 1 ? ` (try ${attempt})` : ""}…`,
  }[status] || status;
  $("conn-text").textContent = text;
  $("conn").title = error ? `Last problem: ${error}` : "";
  if (status === "reconnecting" && attempt === 1) log(`Connection lost${error ? ` (${error})` : ""}: reconnecting`, "warn");
  renderState();
  renderIdle();
});
desk.addEventListener("unauthorized", () => { location.assign(loginUrl()); });
desk.addEventListener("forbidden", (ev) => showError(`The desk refused this user: ${ev.detail}`));
desk.addEventListener("taken_over", () => {
  showError("This desk was opened in another tab or window; this one stopped. Reload to take it back.");
  log("Taken over by another tab", "warn");
});

// -- timers ---------------------------------------------------------------------------------------------------------
function tick() {
  $("state-timer").textContent = clock(nowS() - S.acd.since);
  if (S.phase === "ringing" && S.offer) {
    const total = S.offer.ring_timeout_s || 0;
    const left = Math.max(0, total - (nowS() - S.offer.received));
    $("ring-countdown").textContent = String(Math.ceil(left));
    $("ring-fill").style.width = total ? `${(100 * left) / total}%` : "0%";
    $("call-timer").textContent = clock(nowS() - S.offer.received);
    document.title = Math.floor(nowS() * 2) % 2 ? "☎ Incoming call · Agent desk" : `☎ ${S.offer.caller || "Call"} · Agent desk`;
  } else {
    document.title = S.phase === "connected" ? `On call · Agent desk` : "Agent desk · callcenter";
  }
  if (S.phase === "connected" && S.call) {
    $("call-timer").textContent = clock(nowS() - S.call.started_at);
    const { rx, tx } = rtc.levels();
    $("meter-rx").style.width = `${Math.round(rx * 100)}%`;
    $("meter-tx").style.width = `${Math.round(tx * 100)}%`;
    const st = rtc.state(S.call.call_id);
    $("audio-state").dataset.state = st;
    $("audio-state").textContent = st === "connected" ? "audio connected" : st === "none" ? "no audio" : `audio ${st}`;
  }
  if (S.phase === "wrapup" && S.wrap && S.wrap.ends_at) {
    const left = S.wrap.ends_at - nowS();
    if (left > 0) $("wrap-left").textContent = `${clock(left)} left`;
  }
}
setInterval(tick, 250);

// -- start --------------------------------------------------------------------------------------------------------
async function start() {
  let me;
  try {
    me = await session();          // a 401 goes to /login and comes back here
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    showError(`Could not find out who you are: ${err.message}`);
    $("idle-title").textContent = "Not signed in";
    return;
  }
  S.me = me;
  S.agent = me.agent || "";
  $("who-name").textContent = me.name;
  $("who-agent").textContent = S.agent && S.agent !== me.name ? `agent ${S.agent}` : me.role;
  $("who").hidden = false;
  if (!S.agent && me.role === "agent") {
    showError(`User ${me.name} is not linked to an agent: an admin runs callcenter agent add ID --user ${me.name}`);
    $("conn").dataset.status = "closed";
    $("conn-text").textContent = "No agent";
    $("idle-title").textContent = "This user is not an agent";
    return;
  }
  desk.connect();
}
$("signout").addEventListener("click", async () => {
  desk.close();
  rtc.closeAll();
  await signOut();
});
window.addEventListener("pagehide", () => desk.close());

setPhase("none");
renderState();
start();
