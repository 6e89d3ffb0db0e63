// The QA review page: search calls, play one with its transcript in step, override its scorecard.
// Talks to /api/qa/... through ../api.js (the one place that knows how the page authenticates).
import { api, ApiError, auth, events, loginUrl, mediaUrl, signedIn, signOut, withQuery } from "../api.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const ROLES = new Set(["qa", "supervisor", "admin"]);
const PALETTE = ["#c53030", "#2563c9", "#b7791f", "#1f8a4c", "#6b46c1", "#d53f8c", "#0f7c8c", "#dd6b20"];

const state = {
  user: null,
  offset: 0,
  total: 0,
  terms: [],
  calls: [],
  review: null,          // the open call's review (GET /api/qa/calls/{id})
  leg: null,             // the recording playing: {leg, offset_s, url, ...}
  media: null,           // {url, release} of the loaded audio
  duration: 1,           // the call's timeline length, seconds
  current: -1,           // index of the highlighted utterance
  userScrolledAt: 0,
  categories: new Map(), // category -> colour
  loadToken: 0,
};

// -- formatting ------------------------------------------------------------------------------------------------
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const pad = (n) => String(n).padStart(2, "0");
function clock(s) {
  if (s == null || !Number.isFinite(s)) return "—";
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}
function when(iso) {
  const d = new Date(iso);
  return { day: `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`, time: `${pad(d.getHours())}:${pad(d.getMinutes())}`,
    full: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` };
}
const pct = (x) => (x == null ? "—" : `${Math.round(x * 100)}%`);
const scoreClass = (x) => (x == null ? "" : x >= 0.85 ? "score-good" : x >= 0.6 ? "score-mid" : "score-poor");
const speakerName = (s) => (s === "agent" ? "Agent" : s === "customer" ? "Customer" : s || "—");
function ago(iso) {
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return when(iso).full.slice(0, 10);
}
function colour(category) {
  if (!state.categories.has(category)) state.categories.set(category, PALETTE[state.categories.size % PALETTE.length]);
  return state.categories.get(category);
}
function chip(category) {
  const c = colour(category);
  return `<span class="chip" style="color:${c};border-color:${c}33;background:${c}14" title="${esc(category)}">${esc(category)}</span>`;
}
let statusTimer = 0;
function status(text, sticky = false) {
  $("status").textContent = text;
  clearTimeout(statusTimer);
  if (text && !sticky) statusTimer = setTimeout(() => { $("status").textContent = ""; }, 2500);
}
function busy(text) {      // a status shown only if the work takes long enough to notice; returns "done"
  const t = setTimeout(() => status(text, true), 300);
  return () => { clearTimeout(t); if ($("status").textContent === text) status(""); };
}
function showError(el, message) { el.textContent = message; el.hidden = !message; }

// -- sign-in ------------------------------------------------------------------------------------------------------
// People sign in at /login (the session cookie); the dialog offers that, or pasting an API token.
async function signIn(message = "") {
  showError($("signin-error"), message);
  $("signin-login").href = loginUrl();
  $("token").value = "";
  if (!$("signin").open) $("signin").showModal();
  $("token").focus();
}

async function checkToken() {
  const me = await api("/api/me", { redirect: false });
  if (!ROLES.has(me.role)) throw new ApiError(403, `user ${me.name} has role ${me.role}: QA review needs qa, supervisor or admin`);
  state.user = me;
  $("who-name").textContent = me.name;
  $("who-role").textContent = me.role;
  $("who").hidden = false;
}

async function start() {
  await loadFacets();
  await search(0);
  const m = /call=([^&]+)/.exec(location.hash);
  if (m) await openCall(decodeURIComponent(m[1]));
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  auth.set($("token").value);
  $("signin-btn").disabled = true;
  try {
    await checkToken();
    $("signin").close();
    await start();
  } catch (err) {
    auth.clear();
    showError($("signin-error"), err.status === 401 ? "That token was not accepted." : err.message);
  } finally {
    $("signin-btn").disabled = false;
  }
});
$("signin").addEventListener("cancel", (ev) => ev.preventDefault());   // no way around signing in
$("signout").addEventListener("click", () => { signOut(); });
events.addEventListener("unauthorized", () => {
  if (auth.mode() !== "token") return;     // (signed in with the cookie: api.js goes to /login)
  auth.clear();
  $("who").hidden = true;
  signIn("Your token was refused (revoked or expired): sign in again.");
});

// -- search -------------------------------------------------------------------------------------------------------
function dayBound(value, end) {
  if (!value) return undefined;
  const [y, m, d] = value.split("-").map(Number);
  const t = end ? new Date(y, m - 1, d + 1).getTime() - 1 : new Date(y, m - 1, d).getTime();
  return new Date(t).toISOString();
}
const pctParam = (v) => (v === "" ? undefined : Math.min(100, Math.max(0, Number(v))) / 100);

async function loadFacets() {
  const f = await api("/api/qa/facets");
  const fill = (sel, items) => {
    const keep = sel.value;
    sel.length = 1;
    for (const [value, label] of items) sel.add(new Option(label, value));
    sel.value = keep;
  };
  fill($("f-agent"), f.agents.map((a) => [a.id, a.name ? `${a.name} (${a.id})` : a.id]));
  fill($("f-queue"), f.queues.map((q) => [q, q]));
  fill($("f-category"), f.categories.map((c) => [c, c]));
  f.categories.forEach(colour);
}

async function search(offset) {
  const params = {
    q: $("q").value.trim(), from: dayBound($("f-from").value, false), to: dayBound($("f-to").value, true),
    agent: $("f-agent").value, queue: $("f-queue").value, category: $("f-category").value,
    min_score: pctParam($("f-min").value), max_score: pctParam($("f-max").value), reviewed: $("f-reviewed").value,
    limit: PAGE, offset,
  };
  showError($("search-error"), "");
  const done = busy("Searching…");
  try {
    const res = await api(withQuery("/api/qa/search", params));
    state.offset = offset;
    state.total = res.total;
    state.terms = res.terms;
    state.calls = res.calls;
    renderResults();
  } catch (err) {
    showError($("search-error"), err.message);
  } finally {
    done();
  }
}

function snippetHtml(snippet) {
  return esc(snippet).replace(/\u0002/g, "<mark>").replace(/\u0003/g, "</mark>");
}

function renderResults() {
  const body = $("results").tBodies[0];
  const rows = [];
  for (const c of state.calls) {
    const w = when(c.started_at);
    const selected = state.review && state.review.call.id === c.id ? " selected" : "";
    const snip = c.match ? " has-snippet" : "";
    const caller = c.caller_name ? `${esc(c.caller_name)} · ${esc(c.caller)}` : esc(c.caller || "unknown");
    rows.push(`<tr data-id="${esc(c.id)}" class="call${selected}${snip}">
      <td class="date" title="${esc(w.full)}"><span class="day">${w.day}</span> ${w.time}</td>
      <td class="caller" title="${caller}">${caller}${c.ends_angry ? '<span class="flag" title="Ends angry">!</span>' : ""}</td>
      <td title="${esc(c.agent_name || c.agent)}">${esc(c.agent_name || c.agent || "—")}</td>
      <td title="${esc(c.queue)}">${esc(c.queue || "—")}</td>
      <td class="num">${clock(c.duration_s)}</td>
      <td class="num score ${scoreClass(c.score)}" title="${c.overridden ? `${c.overridden} item(s) overridden` : ""}">${pct(c.score)}${c.overridden ? "<sup>✎</sup>" : ""}</td>
      <td class="cats" title="${esc(c.categories.join(", "))}">${c.categories.slice(0, 2).map(chip).join("")}${c.categories.length > 2 ? `<span class="more">+${c.categories.length - 2}</span>` : ""}</td></tr>`);
    if (c.match) {
      rows.push(`<tr data-id="${esc(c.id)}" class="snippet${selected}"><td colspan="7">
        <span class="who">${speakerName(c.match.speaker)} ${clock(c.match.start_s)}${c.matches > 1 ? ` · ${c.matches} matches` : ""}</span>
        ${snippetHtml(c.match.snippet)}</td></tr>`);
    }
  }
  body.innerHTML = rows.join("");
  $("results-empty").hidden = state.calls.length > 0;
  const first = state.total ? state.offset + 1 : 0;
  $("count").textContent = `${state.total} ${state.total === 1 ? "call" : "calls"}`;
  $("page-info").textContent = state.total ? `${first}–${state.offset + state.calls.length} of ${state.total}` : "";
  $("prev").disabled = state.offset === 0;
  $("next").disabled = state.offset + state.calls.length >= state.total;
}

$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(0); });
for (const id of ["f-from", "f-to", "f-agent", "f-queue", "f-category", "f-reviewed"]) {
  $(id).addEventListener("change", () => search(0));
}
$("f-reset").addEventListener("click", () => {
  for (const id of ["q", "f-from", "f-to", "f-agent", "f-queue", "f-category", "f-min", "f-max", "f-reviewed"]) $(id).value = "";
  search(0);
});
$("prev").addEventListener("click", () => search(Math.max(0, state.offset - PAGE)));
$("next").addEventListener("click", () => search(state.offset + PAGE));
$("results").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr[data-id]");
  if (tr) openCall(tr.dataset.id);
});

// -- the review pane ------------------------------------------------------------------------------------------------
async function openCall(id) {
  const token = ++state.loadToken;
  const done = busy("Loading call…");
  let r;
  try {
    r = await api(`/api/qa/calls/${encodeURIComponent(id)}`);
  } catch (err) {
    showError($("search-error"), err.message);
    return;
  } finally {
    done();
  }
  if (token !== state.loadToken) return;
  state.review = r;
  state.current = -1;
  history.replaceState(null, "", `#call=${encodeURIComponent(id)}`);
  for (const tr of $("results").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === id);
  $("review-empty").hidden = true;
  $("review-body").hidden = false;
  const ends = r.recordings.map((x) => x.offset_s + x.seconds);
  const last = r.utterances.length ? r.utterances[r.utterances.length - 1].end_s : 0;
  state.duration = Math.max(1, ...ends, last, r.transcript ? r.transcript.duration_s : 0);
  renderHead();
  renderEmotion();
  renderTimeline();
  renderTranscript();
  renderScorecards();
  renderLegs();
  loadHistory();
  const preferred = r.recordings.find((x) => x.leg === "stereo") || r.recordings[0];
  await loadLeg(preferred);
}

function renderHead() {
  const c = state.review.call;
  const w = when(c.started_at);
  $("call-caller").textContent = c.caller_name ? `${c.caller_name} · ${c.caller}` : c.caller || "Unknown caller";
  const agent = c.agent
    ? `<a class="link" id="agent-link" title="Show this agent's score history">${esc(c.agent_name || c.agent)}</a>` : "—";
  $("call-meta").innerHTML = [
    `<span>${esc(w.full)}</span>`, `<span>Agent <b>${agent}</b></span>`, `<span>Queue <b>${esc(c.queue || "—")}</b></span>`,
    `<span>Duration <b>${clock(c.duration_s)}</b></span>`,
    c.disposition ? `<span class="badge ${c.disposition === "completed" ? "ok" : "warn"}">${esc(c.disposition)}</span>` : "",
    c.ends_angry ? '<span class="badge bad">Ends angry</span>' : "",
    `<span class="muted" title="Call id">${esc(c.id)}</span>`,
  ].join("");
  const total = c.score;
  $("call-score").innerHTML = `<div class="value ${scoreClass(total)}">${pct(total)}</div><div class="label">QA score</div>`;
}

function emotionColour(score) {
  const s = Math.max(-1, Math.min(1, score));
  if (s < 0) return `rgb(${Math.round(150 + 47 * -s)}, ${Math.round(160 - 112 * -s)}, ${Math.round(170 - 122 * -s)})`;
  return `rgb(${Math.round(150 - 119 * s)}, ${Math.round(160 - 22 * s)}, ${Math.round(170 - 94 * s)})`;
}

function renderEmotion() {
  const rows = state.review.emotion;
  const el = $("emotion");
  if (!rows.length) { el.innerHTML = ""; return; }
  const cells = ['<div class="title">Emotion</div><div></div>', ...[1, 2, 3, 4].map((q) => `<div class="head">Q${q}</div>`)];
  for (const speaker of ["customer", "agent"]) {
    const mine = rows.filter((e) => e.speaker === speaker);
    if (!mine.length) continue;
    cells.push(`<div class="who">${speakerName(speaker)}</div>`);
    for (const q of [1, 2, 3, 4]) {
      const e = mine.find((x) => x.quarter === q);
      cells.push(e
        ? `<div class="cell" style="background:${emotionColour(e.score)}" title="${speakerName(speaker)}, quarter ${q}: score ${e.score.toFixed(2)} (words ${e.lexicon.toFixed(2)}, pitch ${e.pitch_hz.toFixed(0)} Hz, energy ${e.energy_db.toFixed(1)} dB, ${e.rate_wps.toFixed(1)} words/s)">${e.score > 0 ? "+" : ""}${e.score.toFixed(1)}</div>`
        : '<div class="cell" style="background:#e2e6ec"></div>');
    }
  }
  el.innerHTML = cells.join("");
}

const at = (t) => `${(100 * Math.max(0, Math.min(t, state.duration))) / state.duration}%`;

function renderTimeline() {
  const r = state.review;
  for (const speaker of ["customer", "agent"]) {
    $(`lane-${speaker}`).innerHTML = r.utterances.map((u, i) => (u.speaker === speaker
      ? `<div class="seg" data-i="${i}" style="left:${at(u.start_s)};width:${(100 * (u.end_s - u.start_s)) / state.duration}%"></div>` : "")).join("");
  }
  const pauses = r.recordings.filter((x) => x.leg !== "redacted").flatMap((x) => x.pauses.map(([a, b]) => [a + x.offset_s, b + x.offset_s]));
  $("marks").innerHTML = pauses.map(([a, b]) => `<div class="pause" title="Recording paused" style="left:${at(a)};width:${(100 * (b - a)) / state.duration}%"></div>`).join("")
    + r.hits.map((h) => `<div class="mark" data-t="${h.start_s}" style="left:${at(h.start_s)};background:${colour(h.category || h.rule)}"
        title="${esc(h.category || h.rule)}: “${esc(h.phrase)}” (${esc(h.rule)}, ${esc(speakerName(h.speaker))}, ${clock(h.start_s)}${h.source === "spotting" ? ", keyword spotting" : ""})"></div>`).join("");
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800];
  const step = steps.find((s) => state.duration / s <= 10) || 3600;
  const ticks = [];
  for (let t = 0; t <= state.duration + 0.001; t += step) ticks.push(`<span class="tick" style="left:${at(t)}">${clock(t)}</span>`);
  $("axis").innerHTML = ticks.join("");
  $("hit-legend").innerHTML = [...new Set(r.hits.map((h) => h.category || h.rule))].map(chip).join("");
}

function termPatterns() {
  return state.terms.map((t) => {
    const prefix = t.endsWith("*");
    const words = (prefix ? t.slice(0, -1) : t).split(/\s+/).filter(Boolean).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return new RegExp(`\\b${words.join("\\W+")}${prefix ? "\\w*" : "\\b"}`, "giu");
  });
}

function hitPattern(phrase) {
  const words = phrase.trim().split(/\s+/).filter(Boolean).map((w) => w.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "\\w*"));
  return words.length ? new RegExp(`\\b${words.join("\\W+(?:\\w+\\W+)?")}`, "giu") : null;
}

function markText(text, hits, terms) {
  const ranges = [];
  const add = (re, cls, style) => {
    if (!re) return false;
    let found = false;
    for (const m of text.matchAll(re)) {
      if (!m[0]) continue;
      ranges.push([m.index, m.index + m[0].length, cls, style]);
      found = true;
    }
    return found;
  };
  const unplaced = [];
  for (const h of hits) {
    const c = colour(h.category || h.rule);
    if (!add(hitPattern(h.phrase), "hit", `--hit:${c};--hit-bg:${c}22`)) unplaced.push(h);
  }
  for (const re of terms) add(re, "term", "");
  ranges.sort((a, b) => a[0] - b[0] || (a[2] === "hit" ? -1 : 1));
  let out = "", pos = 0;
  for (const [s, e, cls, style] of ranges) {
    if (s < pos) continue;
    out += esc(text.slice(pos, s)) + `<mark class="${cls}"${style ? ` style="${style}"` : ""}>${esc(text.slice(s, e))}</mark>`;
    pos = e;
  }
  return { html: out + esc(text.slice(pos)), unplaced };
}

function renderTranscript() {
  const r = state.review;
  const t = r.transcript;
  $("transcript-info").textContent = t
    ? `${t.engine}${t.model ? ` ${t.model}` : ""} · ${t.words} words${t.redacted ? " · redacted" : ""}`
    : r.utterances.length ? "" : "not transcribed yet";
  const terms = termPatterns();
  $("transcript").innerHTML = r.utterances.map((u, i) => {
    const hits = r.hits.filter((h) => (!h.speaker || h.speaker === u.speaker) && h.start_s < u.end_s + 0.5 && h.end_s > u.start_s - 0.5);
    const { html, unplaced } = markText(u.text, hits, terms);
    const tags = unplaced.length
      ? `<div class="hit-tags">${unplaced.map((h) => chip(`${h.category || h.rule}: ${h.phrase}`)).join("")}</div>` : "";
    return `<li class="utt ${esc(u.speaker)}${u.confidence < 0.5 ? " low" : ""}" data-i="${i}" data-start="${u.start_s}">
      <span class="ts">${clock(u.start_s)}</span><span class="spk">${speakerName(u.speaker)}</span>
      <div><div class="text" title="confidence ${(u.confidence * 100).toFixed(0)}%">${html}</div>${tags}</div></li>`;
  }).join("") || '<li class="empty">No transcript for this call yet.</li>';
  $("transcript").scrollTop = 0;
}

// -- the scorecard -----------------------------------------------------------------------------------------------------
function itemHtml(card, item) {
  const over = item.score != null;
  const by = item.reviewer
    ? `<div class="by">${over ? "Overridden" : "Noted"} by <b>${esc(item.reviewer)}</b> · ${ago(item.updated_at)}${item.comment ? ` — “${esc(item.comment)}”` : ""}</div>` : "";
  return `<div class="item${over ? " overridden" : ""}" data-scorecard="${esc(card.scorecard)}" data-item="${esc(item.item)}">
    <div class="row1"><span class="name">${esc(item.item)}</span><span class="weight">×${item.weight}</span>
      <span class="eff ${scoreClass(item.effective)}">${pct(item.effective)}</span></div>
    <div class="evidence"><span class="auto">${item.auto_score == null ? "Manual" : `Auto ${pct(item.auto_score)}`}</span>${item.evidence ? ` · ${esc(item.evidence)}` : ""}</div>
    <div class="edit">
      <input type="number" class="pct override" min="0" max="100" step="5" placeholder="%" value="${over ? Math.round(item.score * 100) : ""}" aria-label="Override score (%) for ${esc(item.item)}">
      <input type="text" class="comment" maxlength="2000" placeholder="Comment" value="${esc(item.comment)}" title="${esc(item.comment)}" aria-label="Comment for ${esc(item.item)}">
      <button type="button" class="btn small save" disabled>Save</button>
      <button type="button" class="btn small ghost clear" title="Remove the override"${over ? "" : " disabled"}>✕</button>
    </div>${by}</div>`;
}

function renderScorecards() {
  const cards = state.review.scorecards;
  $("scorecards").innerHTML = cards.length ? cards.map((card) => `<div class="card" data-card="${esc(card.scorecard)}">
      <div class="card-head"><span class="name">${esc(card.scorecard)}</span>
        <span class="total ${scoreClass(card.total)}">${pct(card.total)}</span></div>
      ${card.items.map((item) => itemHtml(card, item)).join("")}</div>`).join("")
    : '<div class="empty">No scorecard for this call yet.</div>';
}

async function saveItem(el, clear) {
  const { scorecard, item } = el.dataset;   // (the parser decoded the escaped attribute values)
  const raw = el.querySelector(".override").value.trim();
  const comment = el.querySelector(".comment").value.trim();
  let score = null;
  if (!clear && raw !== "") {
    score = Number(raw);
    if (!Number.isFinite(score) || score < 0 || score > 100) { status("A score is 0 to 100 %"); return; }
    score /= 100;
  }
  const callId = state.review.call.id;
  el.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  try {
    const out = await api(`/api/qa/calls/${encodeURIComponent(callId)}/scores/${encodeURIComponent(scorecard)}/${encodeURIComponent(item)}`,
      { method: "PUT", body: { score, comment: clear ? "" : comment } });
    if (state.review.call.id !== callId) return;
    const card = state.review.scorecards.find((c) => c.scorecard === scorecard);
    card.items = card.items.map((i) => (i.item === item ? out.item : i));
    card.total = out.scorecard_total;
    state.review.call.score = out.call_score;
    state.review.call.overridden = state.review.scorecards.flatMap((c) => c.items).filter((i) => i.score != null).length;
    const listed = state.calls.find((c) => c.id === callId);
    if (listed) { listed.score = out.call_score; listed.overridden = state.review.call.overridden; renderResults(); }
    renderScorecards();
    renderHead();
    status(`Saved ${item}`);
    loadHistory();
  } catch (err) {
    status(`Not saved: ${err.message}`);
    el.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  }
}

$("scorecards").addEventListener("click", (ev) => {
  const el = ev.target.closest(".item");
  if (!el) return;
  if (ev.target.closest(".save")) saveItem(el, false);
  else if (ev.target.closest(".clear")) saveItem(el, true);
});
$("scorecards").addEventListener("input", (ev) => {
  const el = ev.target.closest(".item");
  const save = el && el.querySelector(".save");
  if (save) { save.disabled = false; save.classList.add("primary"); }
});
$("scorecards").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && ev.target.matches("input")) { ev.preventDefault(); saveItem(ev.target.closest(".item"), false); }
});

async function loadHistory() {
  const c = state.review && state.review.call;
  if (!c || !c.agent) { $("history").innerHTML = '<div class="muted">No agent on this call.</div>'; $("history-info").textContent = ""; return; }
  try {
    const h = await api(withQuery(`/api/qa/agents/${encodeURIComponent(c.agent)}/scores`, { limit: 30 }));
    if (!state.review || state.review.call.agent !== c.agent) return;
    $("history-info").textContent = `${h.name || h.agent} · mean ${pct(h.mean)} over ${h.calls.length} calls`;
    const calls = [...h.calls].reverse();
    const bars = calls.map((x) => `<div class="bar${x.call_id === c.id ? " current" : ""}" data-id="${esc(x.call_id)}"
      style="height:${Math.max(4, Math.round((x.score ?? 0) * 100))}%" title="${esc(when(x.started_at).full)} · ${pct(x.score)}"></div>`).join("");
    const items = [...h.items].sort((a, b) => (a.mean ?? 1) - (b.mean ?? 1)).slice(0, 8)
      .map((i) => `<tr><td>${esc(i.item)} <span class="muted">${esc(i.scorecard)}</span></td><td class="num ${scoreClass(i.mean)}">${pct(i.mean)}</td></tr>`).join("");
    $("history").innerHTML = `<div class="spark">${bars}</div><table>${items}</table>`;
  } catch (err) {
    $("history").innerHTML = `<div class="muted">${esc(err.message)}</div>`;
  }
}
$("history").addEventListener("click", (ev) => { const b = ev.target.closest(".bar"); if (b) openCall(b.dataset.id); });
$("call-meta").addEventListener("click", (ev) => {
  if (ev.target.id === "agent-link") { $("f-agent").value = state.review.call.agent; search(0); }
});

// -- playback --------------------------------------------------------------------------------------------------------
const audio = $("audio");

function renderLegs() {
  const sel = $("leg");
  sel.length = 0;
  for (const rec of state.review.recordings) sel.add(new Option(`${rec.leg} · ${clock(rec.seconds)}`, rec.leg));
  sel.disabled = state.review.recordings.length < 2;
  for (const id of ["play", "back5", "fwd5"]) $(id).disabled = state.review.recordings.length === 0;
  showError($("audio-error"), state.review.recordings.length ? "" : "This call has no recording.");
}

async function loadLeg(rec, resumeAt = 0, play = false) {
  audio.pause();
  if (state.media) { state.media.release(); state.media = null; }
  audio.removeAttribute("src");
  state.leg = rec || null;
  updateClock();
  if (!rec) return;
  $("leg").value = rec.leg;
  const callId = state.review.call.id;
  try {
    const media = await mediaUrl(rec.url, { accept: "audio/wav" });
    if (state.review.call.id !== callId || state.leg !== rec) { media.release(); return; }
    state.media = media;
    audio.src = media.url;
    audio.playbackRate = Number($("rate").value);
    if (resumeAt) audio.addEventListener("loadedmetadata", () => seek(resumeAt), { once: true });
    if (play) audio.play().catch(() => {});
    showError($("audio-error"), "");
  } catch (err) {
    showError($("audio-error"), `Cannot play the ${rec.leg} recording: ${err.message}`);
  }
}

const callTime = () => audio.currentTime + (state.leg ? state.leg.offset_s : 0);
function seek(t) {
  const local = Math.max(0, t - (state.leg ? state.leg.offset_s : 0));
  audio.currentTime = Number.isFinite(audio.duration) ? Math.min(local, audio.duration) : local;
  sync(true);
}

function updateClock() {
  const t = state.leg ? callTime() : 0;
  $("t-now").textContent = clock(t);
  $("t-len").textContent = clock(state.review ? state.duration : 0);
  $("playhead").style.left = at(t);
  $("play").textContent = audio.paused ? "▶" : "❚❚";
  $("play").setAttribute("aria-label", audio.paused ? "Play" : "Pause");
}

function currentIndex(t) {
  const u = state.review.utterances;
  let found = -1;
  for (let i = 0; i < u.length; i++) {
    if (u[i].start_s > t) break;
    if (t < u[i].end_s + 0.15) found = i;
  }
  return found;
}

function sync(jumped = false) {
  if (!state.review) return;
  updateClock();
  const i = currentIndex(callTime());
  if (i === state.current && !jumped) return;
  const list = $("transcript");
  list.querySelector(".utt.current")?.classList.remove("current");
  document.querySelector(".seg.current")?.classList.remove("current");
  state.current = i;
  if (i < 0) return;
  const li = list.querySelector(`.utt[data-i="${i}"]`);
  li?.classList.add("current");
  document.querySelector(`.seg[data-i="${i}"]`)?.classList.add("current");
  const idle = Date.now() - state.userScrolledAt > 4000;
  if (li && $("follow").checked && (idle || jumped)) {
    const top = li.offsetTop - list.offsetTop - list.clientHeight / 3;
    list.scrollTo({ top: Math.max(0, top), behavior: "smooth" });
  }
}

let raf = 0;
function tick() { sync(); raf = audio.paused ? 0 : requestAnimationFrame(tick); }
audio.addEventListener("play", () => { if (!raf) raf = requestAnimationFrame(tick); updateClock(); });
audio.addEventListener("pause", () => { updateClock(); });
audio.addEventListener("ended", () => { updateClock(); });
audio.addEventListener("seeked", () => sync(true));
audio.addEventListener("error", () => { if (audio.getAttribute("src")) showError($("audio-error"), "The browser cannot play this recording."); });

function togglePlay() {
  if (!audio.getAttribute("src")) return;
  if (audio.paused) audio.play().catch((err) => showError($("audio-error"), `Cannot play: ${err.message}`));
  else audio.pause();
}
$("play").addEventListener("click", togglePlay);
$("back5").addEventListener("click", () => seek(callTime() - 5));
$("fwd5").addEventListener("click", () => seek(callTime() + 5));
$("rate").addEventListener("change", () => { audio.playbackRate = Number($("rate").value); });
$("leg").addEventListener("change", () => {
  const rec = state.review.recordings.find((x) => x.leg === $("leg").value);
  loadLeg(rec, callTime(), !audio.paused);
});
$("timeline").addEventListener("click", (ev) => {
  const mark = ev.target.closest(".mark");
  if (mark) { seek(Number(mark.dataset.t)); return; }
  const rect = $("track").getBoundingClientRect();
  if (ev.clientX < rect.left) return;
  seek(((ev.clientX - rect.left) / rect.width) * state.duration);
});
$("transcript").addEventListener("click", (ev) => {
  const li = ev.target.closest(".utt");
  if (li && state.leg) seek(Number(li.dataset.start));
});
for (const kind of ["wheel", "touchmove"]) $("transcript").addEventListener(kind, () => { state.userScrolledAt = Date.now(); }, { passive: true });
$("vtt").addEventListener("click", async () => {
  const id = state.review.call.id;
  try {
    const media = await mediaUrl(`/api/qa/calls/${encodeURIComponent(id)}/transcript.vtt`, { accept: "text/vtt" });
    const a = Object.assign(document.createElement("a"), { href: media.url, download: `${id}.vtt` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(media.release, 1000);
  } catch (err) {
    status(err.message);
  }
});

document.addEventListener("keydown", (ev) => {
  const typing = ev.target.closest("input, select, textarea, [contenteditable]");
  if (ev.key === "/" && !typing) { ev.preventDefault(); $("q").focus(); return; }
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey || !state.review) return;
  if (ev.key === " " && !ev.target.closest("button")) { ev.preventDefault(); togglePlay(); }
  else if (ev.key === "ArrowLeft") { ev.preventDefault(); seek(callTime() - 5); }
  else if (ev.key === "ArrowRight") { ev.preventDefault(); seek(callTime() + 5); }
});

// -- start ----------------------------------------------------------------------------------------------------------
(async () => {
  if (!auth.has() && !signedIn.maybe()) { signIn(); return; }
  try {
    await checkToken();               // the pasted token of this tab, else the session cookie
    await start();
  } catch (err) {
    auth.clear();
    signIn(err.status === 401 ? "" : err.message);
  }
})();
