// The supervisor's board (/supervisor): queues, calls and agents, live; listen / whisper / barge on a call
// and force an agent's state. Sources: GET /api/queues/stats every few seconds (queue figures and each
// agent's state now), GET /api/agents (names), GET /api/agents/{id}/status (time in state at load),
// GET /api/calls (calls already up at load), the live event stream /api/events/ws (everything that
// happens), and the desk WebSocket (../agent/desk.js) for `monitor` and `force_state`, whose audio goes
// through the same ../agent/rtc.js as the agent's. DOM hooks for tests: docs/pages.md.
import { api, ApiError, auth, session, signOut } from "../api.js";
import { DeskClient, DeskError } from "../agent/desk.js";
import { RtcAudio } from "../agent/rtc.js";
import { clock, errorBanner, esc, nowS, reasonText } from "../agent/ui.js";

const $ = (id) => document.getElementById(id);
const STATS_EVERY_MS = 5000;
const AGENTS_EVERY_MS = 30000;
const ENDED_KEEP_MS = 6000;
const STATE_LABELS = { logged_out: "Logged out", available: "Available", reserved: "Ringing", on_call: "On call",
  wrap_up: "Wrap-up", break: "Break" };
const CALL_STATUS = { ivr: "In IVR", waiting: "Waiting", ringing: "Ringing", talking: "Talking", up: "In progress",
  left: "Left queue", ended: "Ended" };
const MODES = { listen: "Listening to", whisper: "Whispering to the agent on", barge: "Barged into" };

const S = {
  me: null,
  agents: new Map(),     // id -> {id, name, team, state, reason, since, call, answered}
  queues: [],            // GET /api/queues/stats .queues
  total: null,
  calls: new Map(),      // call_id -> {call_id, caller, queue, status, agent, since, started, ended_at}
  monitor: null,         // {call_id, mode, since}
  sent: new Map(),
  statsAt: 0,
};
const desk = new DeskClient();
const rtc = new RtcAudio({ audio: $("remote-audio") });
window.__supervisor = { desk, rtc, state: S };

// -- formatting -----------------------------------------------------------------------------------------------------
const pct = (x) => (x == null ? "—" : `${Math.round(x * 100)}%`);
const slClass = (x) => (x == null ? "" : x >= 0.8 ? "score-good" : x >= 0.6 ? "score-mid" : "score-poor");
const isoToS = (iso) => { const t = Date.parse(iso); return Number.isNaN(t) ? nowS() : t / 1000; };

const showError = errorBanner();

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

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderQueues();
    renderCalls();
    renderAgents();
    renderTotals();
    renderMonitor();
  });
}

// -- data: agents, queue figures, calls ------------------------------------------------------------------------------
function agent(id) {
  let a = S.agents.get(id);
  if (!a) {
    a = { id, name: "", team: "", state: "logged_out", reason: "", since: 0, call: "", answered: 0 };
    S.agents.set(id, a);
  }
  return a;
}

async function loadAgents() {
  const list = await api("/api/agents");
  const seen = new Set();
  for (const row of list) {
    const a = agent(row.id);
    a.name = row.name;
    a.team = row.team;
    seen.add(row.id);
  }
  for (const id of [...S.agents.keys()]) if (!seen.has(id)) S.agents.delete(id);
  render();
}

async function loadStatus(id) {
  try {
    const st = await api(`/api/agents/${encodeURIComponent(id)}/status`);
    const a = agent(id);
    a.state = st.state;
    a.reason = st.reason || "";
    a.since = st.since || nowS();
    a.pending = st.pending || "";
    if (st.contact) a.call = st.contact;
  } catch { /* the stats refresh fills the state in */ }
  render();
}
const loadStatuses = () => Promise.all([...S.agents.keys()].map(loadStatus));

async function loadStats() {
  const stats = await api("/api/queues/stats");
  S.queues = stats.queues;
  S.total = stats.total;
  S.statsAt = nowS();
  for (const row of stats.agents) {
    const a = agent(row.agent);
    a.answered = row.metrics.answered;
    if (row.state_now && row.state_now !== a.state) {   // missed an event (or none yet): trust the ACD
      a.state = row.state_now;
      a.reason = row.reason_now || "";
      a.since = 0;
      loadStatus(row.agent);
    }
  }
  $("updated").textContent = stats.acd_running ? "" : "ACD not running";
  render();
}

async function loadCalls() {
  const rows = await api("/api/calls?limit=200");
  for (const r of rows) {
    if (r.ended_at || S.calls.has(r.id)) continue;
    S.calls.set(r.id, { call_id: r.id, caller: r.caller || r.caller_uri || "", queue: "", status: "up", agent: "",
      since: isoToS(r.answered_at || r.started_at), started: isoToS(r.started_at) });
  }
  for (const a of S.agents.values()) {    // the calls agents are on, from their status
    const c = a.call && S.calls.get(a.call);
    if (c && ["on_call", "reserved", "wrap_up"].includes(a.state)) {
      c.agent = a.id;
      if (a.state === "on_call") c.status = "talking";
      if (a.state === "reserved") c.status = "ringing";
    }
  }
  render();
}

function repeat(fn, ms, what) {
  const run = async () => {
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showError(`${what}: ${err.message}`);
    }
    setTimeout(run, ms);
  };
  setTimeout(run, ms);
}

// -- the live event stream --------------------------------------------------------------------------------------------
function onEvent(e) {
  const at = typeof e.at === "number" ? e.at : nowS();
  const call = (id) => {
    let c = S.calls.get(id);
    if (!c) {
      c = { call_id: id, caller: "", queue: "", status: "up", agent: "", since: at, started: at };
      S.calls.set(id, c);
    }
    return c;
  };
  switch (e.type) {
    case "call_started": Object.assign(call(e.call_id), { caller: e.caller || "", status: "ivr", since: at, started: at }); break;
    case "queue_joined": Object.assign(call(e.call_id), { queue: e.queue, caller: e.caller || call(e.call_id).caller, status: "waiting", since: at, agent: "" }); break;
    case "offer": Object.assign(call(e.call_id), { queue: e.queue || call(e.call_id).queue, status: "ringing", agent: e.agent }); break;
    case "offer_canceled": {
      const c = S.calls.get(e.call_id);
      if (c && c.status === "ringing" && c.agent === e.agent) Object.assign(c, { status: "waiting", agent: "" });
      break;
    }
    case "connected": {
      Object.assign(call(e.call_id), { queue: e.queue || call(e.call_id).queue, status: "talking", agent: e.agent, since: at });
      agent(e.agent).call = e.call_id;
      break;
    }
    case "queue_left": {
      const c = S.calls.get(e.call_id);
      if (c && e.outcome !== "answered") Object.assign(c, { status: "left", outcome: e.outcome, since: at });
      break;
    }
    case "call_ended": {
      const c = S.calls.get(e.call_id);
      if (c) {
        Object.assign(c, { status: "ended", ended_at: Date.now() });
        setTimeout(() => { if (S.calls.get(e.call_id) === c) { S.calls.delete(e.call_id); render(); } }, ENDED_KEEP_MS);
      }
      for (const a of S.agents.values()) if (a.call === e.call_id && a.state !== "wrap_up") a.call = "";
      if (S.monitor && S.monitor.call_id === e.call_id) stopMonitor(false);
      break;
    }
    case "agent_state": {
      const a = agent(e.agent);
      const settled = ["available", "break", "logged_out"].includes(e.state);
      Object.assign(a, { state: e.state, reason: e.reason || "", since: at,
        pending: e.pending !== undefined ? e.pending : settled ? "" : a.pending });
      if (!["on_call", "reserved", "wrap_up"].includes(e.state)) a.call = "";
      break;
    }
    case "overflow": liveCatchUp(); break;
    default: break;
  }
  render();
}

function liveCatchUp() {
  Promise.allSettled([loadStatuses(), loadCalls(), loadStats()]).then(render);
}

const live = { ws: null, attempt: 0, timer: 0, why: "" };   // (why: the stream's last error, shown on its indicator)
function connectEvents() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/events/ws`);
  live.ws = ws;
  setConn("conn-events", live.attempt ? "reconnecting" : "connecting");
  ws.onopen = () => { if (auth.has()) ws.send(JSON.stringify({ type: "auth", token: auth.token() })); };
  ws.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch { return; }
    if (e.type === "error") { live.why = e.detail || e.message || ""; return; }
    if (e.type === "heartbeat" && $("conn-events").dataset.status !== "connected") {
      const again = live.attempt > 0;
      live.attempt = 0;
      setConn("conn-events", "connected");
      if (again) liveCatchUp();           // what happened while we were away
    }
    onEvent(e);
  };
  ws.onclose = (ev) => {
    if (live.ws !== ws) return;
    const refused = ev.code === 4401 || ev.code === 4403;
    setConn("conn-events", refused ? "closed" : "reconnecting", live.why || ev.reason);
    live.why = "";
    live.attempt += 1;
    const delay = refused ? 30000 : Math.min(15000, 500 * 2 ** Math.min(live.attempt, 5));
    live.timer = setTimeout(connectEvents, delay);
  };
}

function setConn(id, status, why = "") {
  const el = $(id);
  el.dataset.status = status;
  el.title = `${id === "conn-desk" ? "Desk" : "Live events"}: ${status}${why ? ` (${why})` : ""}`;
  if (id === "conn-events") {   // without the stream the board still refreshes every few seconds: say so, calmly
    el.lastChild.textContent = status === "closed" ? "Live off · polling" : "Live";
  }
}

// -- rendering ----------------------------------------------------------------------------------------------------------
function renderQueues() {
  const rows = S.queues.map((q) => {
    const m = q.metrics || {};
    const by = q.agents_now || {};
    const sl = m.service_level;
    return `<tr data-queue="${esc(q.queue)}">
      <td class="name">${esc(q.queue)}</td>
      <td class="num waiting ${q.waiting ? "hot" : ""}" data-testid="q-waiting">${q.waiting ?? "—"}</td>
      ${q.waiting ? `<td class="num time ${q.longest_wait_now_s > 60 ? "score-poor" : ""}" data-since="${S.statsAt - (q.longest_wait_now_s || 0)}">${clock(q.longest_wait_now_s)}</td>` : '<td class="num">—</td>'}
      <td class="num">${by.available || 0}</td><td class="num">${by.reserved || 0}</td><td class="num">${by.on_call || 0}</td>
      <td class="num">${by.wrap_up || 0}</td><td class="num">${by.break || 0}</td>
      <td class="sl"><span class="slbar"><span class="${slClass(sl)}" style="width:${sl == null ? 0 : Math.round(sl * 100)}%"></span></span>
        <span class="slv ${slClass(sl)}">${pct(sl)}</span><span class="muted small">${m.service_level_s ? `in ${Math.round(m.service_level_s)} s` : ""}</span></td>
      <td class="num">${m.offered ?? 0}</td><td class="num">${m.answered ?? 0}</td>
      <td class="num ${m.abandoned ? "score-mid" : ""}">${m.abandoned ?? 0}</td>
      <td class="num">${clock(m.asa_s)}</td><td class="num">${clock(m.aht_s)}</td></tr>`;
  });
  $("queues").tBodies[0].innerHTML = rows.join("");
  $("queues-empty").hidden = S.queues.length > 0;
  $("queues-count").textContent = S.queues.length ? String(S.queues.length) : "";
}

function renderCalls() {
  const order = { ringing: 0, waiting: 1, talking: 2, up: 3, ivr: 4, left: 5, ended: 6 };
  const list = [...S.calls.values()].sort((a, b) => (order[a.status] - order[b.status]) || (a.since - b.since));
  const monitoring = S.monitor && S.monitor.call_id;
  $("calls").tBodies[0].innerHTML = list.map((c) => {
    const a = c.agent && S.agents.get(c.agent);
    const watch = monitoring === c.call_id;
    const canMonitor = c.status === "talking" && desk.connected;
    const actions = watch
      ? `<button type="button" class="btn small stop" data-act="off" data-testid="stop-${esc(c.call_id)}">Stop ${esc(S.monitor.mode)}</button>`
      : ["listen", "whisper", "barge"].map((m) => `<button type="button" class="btn small" data-act="${m}" data-testid="${m}-${esc(c.call_id)}"
          ${canMonitor ? "" : "disabled"}>${m[0].toUpperCase()}${m.slice(1)}</button>`).join("");
    const status = c.status === "left" ? `Left (${esc(c.outcome || "")})` : CALL_STATUS[c.status] || c.status;
    return `<tr data-call="${esc(c.call_id)}" data-status="${esc(c.status)}" class="${watch ? "selected" : ""} ${c.status === "ended" ? "gone" : ""}">
      <td class="mono" title="${esc(c.call_id)}">${esc(c.caller || "unknown")}</td>
      <td>${esc(c.queue || "—")}</td>
      <td><span class="cs cs-${esc(c.status)}">${status}</span></td>
      <td title="${esc(c.agent)}">${a ? esc(a.name || a.id) : esc(c.agent || "—")}</td>
      <td class="num time" data-since="${c.since}">${clock(nowS() - c.since)}</td>
      <td class="actions">${c.status === "ended" ? "" : actions}</td></tr>`;
  }).join("");
  const live = list.filter((c) => c.status !== "ended").length;
  $("calls-empty").hidden = list.length > 0;
  $("calls-count").textContent = live ? String(live) : "";
}

function renderAgents() {
  const all = $("agent-filter").value === "all";
  const order = { reserved: 0, on_call: 1, wrap_up: 2, available: 3, break: 4, logged_out: 5 };
  const list = [...S.agents.values()].filter((a) => all || a.state !== "logged_out")
    .sort((a, b) => (order[a.state] - order[b.state]) || (a.since - b.since));
  $("agents").tBodies[0].innerHTML = list.map((a) => {
    const c = a.call && S.calls.get(a.call);
    const call = c ? `${esc(c.caller || "call")}${c.queue ? ` <span class="muted">· ${esc(c.queue)}</span>` : ""}` : a.call ? '<span class="muted">a call</span>' : "";
    return `<tr data-agent="${esc(a.id)}" data-state="${esc(a.state)}">
      <td><span class="aname">${esc(a.name || a.id)}</span> <span class="muted small">${a.name ? esc(a.id) : ""}</span></td>
      <td><span class="st st-${esc(a.state)}" data-testid="agent-state-${esc(a.id)}">${STATE_LABELS[a.state] || esc(a.state)}</span>${a.state === "break" && a.reason ? ` <span class="muted small">${esc(reasonText(a.reason))}</span>` : ""}${a.pending ? ` <span class="pend" title="After the call">→ ${esc(STATE_LABELS[a.pending] || a.pending)}</span>` : ""}</td>
      <td class="num time ${longInState(a) ? "score-mid" : ""}" data-since="${a.since || ""}">${a.since ? clock(nowS() - a.since) : "—"}</td>
      <td class="call">${call}</td>
      <td class="num">${a.answered || 0}</td>
      <td class="force"><button type="button" class="btn small ghost forcebtn" data-force="${esc(a.id)}" data-testid="force-${esc(a.id)}"
        ${desk.connected ? "" : "disabled"}>Force ▾</button></td></tr>`;
  }).join("");
  const loggedIn = [...S.agents.values()].filter((a) => a.state !== "logged_out").length;
  $("agents-empty").hidden = list.length > 0;
  $("agents-empty").textContent = S.agents.size ? "No agent is logged in (Show: All lists everyone)." : "No agents are configured.";
  $("agents-count").textContent = `${loggedIn} of ${S.agents.size} logged in`;
}
const longInState = (a) => a.since && ((a.state === "wrap_up" && nowS() - a.since > 120) || (a.state === "break" && nowS() - a.since > 1800));

function renderTotals() {
  let waiting = 0, longest = 0;
  for (const q of S.queues) { waiting += q.waiting || 0; longest = Math.max(longest, q.waiting ? q.longest_wait_now_s || 0 : 0); }
  const agents = [...S.agents.values()];
  $("tot-waiting").textContent = String(waiting);
  $("tot-waiting").parentElement.classList.toggle("hot", waiting > 0);
  $("tot-longest").textContent = clock(longest + (waiting ? nowS() - S.statsAt : 0));
  $("tot-talking").textContent = String(agents.filter((a) => a.state === "on_call").length);
  $("tot-available").textContent = String(agents.filter((a) => a.state === "available").length);
  const sl = S.total ? S.total.service_level : null;
  $("tot-sl").textContent = pct(sl);
  $("tot-sl").className = slClass(sl);
}

$("agent-filter").addEventListener("change", render);

// Timers: one pass a second over the cells that count up.
setInterval(() => {
  const now = nowS();
  for (const el of document.querySelectorAll("td.time[data-since]")) {
    const since = Number(el.dataset.since);
    if (since) el.textContent = clock(now - since);
  }
  if (S.queues.some((q) => q.waiting)) renderTotals();
  if (S.monitor) {
    $("monitor-timer").textContent = clock(now - S.monitor.since);
    $("monitor-level").style.width = `${Math.round(rtc.levels().rx * 100)}%`;
  }
}, 1000);

// -- force an agent's state ---------------------------------------------------------------------------------------------
const menu = document.createElement("div");
menu.className = "menu";
menu.id = "force-menu";
menu.dataset.testid = "force-menu";
menu.hidden = true;
menu.innerHTML = `<div class="menu-title" id="force-title"></div>
  <button type="button" data-action="available" data-testid="force-available">Available</button>
  <div class="menu-row"><button type="button" data-action="pause" data-testid="force-break">Break</button>
    <select id="force-reason" data-testid="force-reason" aria-label="Reason">
      <option value="supervisor">supervisor</option><option value="break">break</option><option value="lunch">lunch</option>
      <option value="meeting">meeting</option><option value="training">training</option><option value="coaching">coaching</option></select></div>
  <button type="button" data-action="logout" data-testid="force-logout">Log out</button>`;
document.body.append(menu);
let menuAgent = "";
$("agents").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-force]");
  if (!b) return;
  ev.stopPropagation();
  if (!menu.hidden && menuAgent === b.dataset.force) { menu.hidden = true; return; }
  menuAgent = b.dataset.force;
  const a = S.agents.get(menuAgent);
  $("force-title").textContent = `${a && a.name ? a.name : menuAgent}: ${STATE_LABELS[a && a.state] || ""}`;
  const r = b.getBoundingClientRect();
  menu.style.top = `${Math.min(r.bottom + 4, innerHeight - 150)}px`;
  menu.style.left = `${Math.max(8, r.right - 200)}px`;
  menu.hidden = false;
});
menu.addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-action]");
  if (!b) return;
  const a = S.agents.get(menuAgent);
  let action = b.dataset.action;
  if (action === "available") action = a && a.state === "logged_out" ? "login" : "resume";
  const reason = action === "pause" ? $("force-reason").value : "";
  send("force_state", { agent: menuAgent, action, reason }, `Force ${menuAgent} ${action}`);
  menu.hidden = true;
});
document.addEventListener("click", (ev) => { if (!menu.contains(ev.target)) menu.hidden = true; });
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") menu.hidden = true; });

// -- listen / whisper / barge --------------------------------------------------------------------------------------------
function startMonitor(callId, mode) {
  rtc.microphone().catch((err) => showError(`Microphone: ${err.message} (listening works without it)`));
  send("monitor", { call_id: callId, mode }, `${mode[0].toUpperCase()}${mode.slice(1)}`);
}
function stopMonitor(tell = true) {
  if (!S.monitor) return;
  const id = S.monitor.call_id;
  if (tell) send("monitor", { call_id: id, mode: "off" }, "Stop");
  rtc.close(id);
  S.monitor = null;
  render();
}
$("calls").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-act]");
  if (!b) return;
  const id = b.closest("tr").dataset.call;
  if (b.dataset.act === "off") stopMonitor();
  else {
    if (S.monitor && S.monitor.call_id !== id) stopMonitor();
    startMonitor(id, b.dataset.act);
  }
});
for (const mode of ["listen", "whisper", "barge"]) {
  $(`monitor-${mode}`).addEventListener("click", () => { if (S.monitor) startMonitor(S.monitor.call_id, mode); });
}
$("monitor-stop").addEventListener("click", () => stopMonitor());

function renderMonitor() {
  const m = S.monitor;
  $("monitor").hidden = !m;
  $("monitor").dataset.mode = m ? m.mode : "off";
  if (!m) return;
  const c = S.calls.get(m.call_id);
  const a = c && c.agent && S.agents.get(c.agent);
  $("monitor-mode").textContent = MODES[m.mode] || m.mode;
  $("monitor-hint").textContent = { listen: "Nobody hears you.", whisper: "The agent hears you; the caller does not.",
    barge: "The agent and the caller both hear you." }[m.mode] || "";
  $("monitor-call").textContent = `${c && c.caller ? c.caller : m.call_id.slice(0, 8)}${a ? ` · ${a.name || a.id}` : ""}`;
  for (const mode of ["listen", "whisper", "barge"]) $(`monitor-${mode}`).classList.toggle("on", m.mode === mode);
}

desk.on("monitor_state", (msg) => {
  if (msg.mode === "off") {
    if (S.monitor && S.monitor.call_id === msg.call_id) { rtc.close(msg.call_id); S.monitor = null; }
  } else {
    const same = S.monitor && S.monitor.call_id === msg.call_id;
    S.monitor = { call_id: msg.call_id, mode: msg.mode, since: same ? S.monitor.since : nowS() };
    rtc.setMuted(msg.mode === "listen");       // listening: the microphone sends nothing, whatever the server does
  }
  render();
});
desk.on("rtc_offer", async (msg) => {
  try {
    const sdp = await rtc.answer(msg.call_id, msg.sdp);
    if (S.monitor) rtc.setMuted(S.monitor.mode === "listen");
    send("rtc_answer", { call_id: msg.call_id, sdp }, "Audio");
  } catch (err) {
    showError(`Audio: ${err.message}`);
  }
});
desk.on("agent_state", (msg) => {      // the desk tells supervisors too (if it does): same as the event
  if (msg.agent) onEvent({ type: "agent_state", at: msg.since || nowS(), agent: msg.agent, state: msg.state, reason: msg.reason });
});
desk.on("error", (msg) => {
  const what = msg.ref ? S.sent.get(msg.ref) : "";
  showError(`${what ? `${what}: ` : ""}${msg.message || msg.code}`);
});
desk.addEventListener("status", (ev) => { setConn("conn-desk", ev.detail.status, ev.detail.error); render(); });
desk.addEventListener("forbidden", (ev) => showError(`The desk refused this user: ${ev.detail}`));
desk.addEventListener("taken_over", () => showError("The board was opened in another tab; monitoring works there now. Reload to take it back."));
rtc.addEventListener("error", (ev) => showError(`Audio: ${ev.detail}`));

// -- start ------------------------------------------------------------------------------------------------------------
async function start() {
  let me;
  try {
    me = await session();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError(`Could not find out who you are: ${err.message}`);
    return;
  }
  S.me = me;
  $("who-name").textContent = me.name;
  $("who-role").textContent = me.role;
  $("who").hidden = false;
  if (!["supervisor", "admin"].includes(me.role)) {
    showError(`User ${me.name} has role ${me.role}: the supervisor board needs supervisor or admin.`);
    return;
  }
  connectEvents();
  desk.connect();
  try {
    await loadAgents();
  } catch (err) {
    showError(`Agents: ${err.message}`);
  }
  await Promise.allSettled([loadStatuses(), loadStats().catch((err) => showError(`Queue figures: ${err.message}`)),
    loadCalls().catch((err) => showError(`Calls: ${err.message}`))]);
  repeat(loadStats, STATS_EVERY_MS, "Queue figures");
  repeat(loadAgents, AGENTS_EVERY_MS, "Agents");
}
$("signout").addEventListener("click", async () => {
  desk.close();
  rtc.closeAll();
  await signOut();
});
window.addEventListener("pagehide", () => desk.close());
start();
