// A small client for the desk WebSocket (/api/desk/ws, docs/desk.md): typed JSON messages with a
// "type" discriminator. It connects with the session cookie (nothing secret in the URL), answers the
// server's pings, numbers every message it sends (seq, strictly increasing for the life of the page, so
// a resumed session never sees a number twice), reconnects with backoff and asks to resume the same
// session (resume_token) so that a call survives a network blip, and dispatches each server message
// as a DOM event named after its type:
//
//   const desk = new DeskClient();
//   desk.on("agent_state", (msg) => ...);
//   desk.addEventListener("status", (ev) => ev.detail.status);   // connecting | connected | reconnecting | closed
//   desk.connect();
//   const seq = desk.send("state", { action: "login" });          // an error with ref === seq answers it
//
// The page uses one client; supervisors use the same one (monitor, force_state).

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_TAKEN_OVER = 4409;   // the same desk was opened elsewhere: do not fight it

export class DeskError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class DeskClient extends EventTarget {
  constructor({ path = "/api/desk/ws", token = "" } = {}) {
    super();
    this.path = path;
    this.token = token;          // only for API clients without a cookie (sent as the first message)
    this.ws = null;
    this.seq = 0;
    this.status = "idle";
    this.session = null;
    this.resumeToken = "";
    this.heartbeatS = 10;
    this.welcome = null;
    this.attempt = 0;
    this.retryAt = 0;
    this.lastError = "";
    this._retryTimer = 0;
    this._watchdog = 0;
    this._resumeSeq = 0;
    this._stopped = false;
  }

  /** Subscribe to one server message type (or "*" for all); returns an unsubscribe function. */
  on(type, handler) {
    const listener = (ev) => handler(ev.detail);
    this.addEventListener(type === "*" ? "message" : `msg:${type}`, listener);
    return () => this.removeEventListener(type === "*" ? "message" : `msg:${type}`, listener);
  }

  get connected() { return this.status === "connected"; }

  connect() {
    this._stopped = false;
    clearTimeout(this._retryTimer);
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${this.path}`;
    this._setStatus(this.attempt ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this._scheduleRetry(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.token) ws.send(JSON.stringify({ type: "auth", token: this.token }));
      if (this.resumeToken) this._resumeSeq = this._raw("resume", { resume_token: this.resumeToken });
      this._arm();
    };
    ws.onmessage = (ev) => this._receive(ev.data);
    ws.onclose = (ev) => this._closed(ws, ev);
    ws.onerror = () => { /* onclose follows with the code */ };
  }

  /** Close for good (sign-out, page unload): no reconnect. */
  close() {
    this._stopped = true;
    clearTimeout(this._retryTimer);
    clearTimeout(this._watchdog);
    if (this.ws) this.ws.close(1000, "bye");
    this._setStatus("closed");
  }

  /** Send a typed message; returns its seq. Throws DeskError("offline") when the socket is not up. */
  send(type, fields = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.status !== "connected") {
      throw new DeskError("offline", "not connected to the desk server: wait for the connection to come back");
    }
    return this._raw(type, fields);
  }

  _raw(type, fields) {
    this.seq += 1;
    this.ws.send(JSON.stringify({ type, seq: this.seq, ...fields }));
    return this.seq;
  }

  _receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      console.warn("desk: a message that is not JSON", text);
      return;
    }
    if (!msg || typeof msg.type !== "string") return;
    this._arm();
    if (msg.type === "ping") {
      try { this._raw("pong", {}); } catch { /* closing */ }
    } else if (msg.type === "welcome") {
      this.session = msg.session;
      if (msg.resume_token) this.resumeToken = msg.resume_token;
      if (msg.heartbeat_s > 0) this.heartbeatS = msg.heartbeat_s;
      if (Number.isInteger(msg.last_seq)) this.seq = Math.max(this.seq, msg.last_seq);
      this.welcome = msg;
      this.attempt = 0;
      this.lastError = "";
      this._setStatus("connected");
    } else if (msg.type === "error" && this._resumeSeq && msg.ref === this._resumeSeq) {
      // The old session is gone (grace period over, server restarted): carry on with the new one,
      // whose state the welcome gave. Not an error the person has to read.
      this.resumeToken = "";
      this._resumeSeq = 0;
      this.dispatchEvent(new CustomEvent("resume_failed", { detail: msg }));
      return;
    }
    this.dispatchEvent(new CustomEvent(`msg:${msg.type}`, { detail: msg }));
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  // Three heartbeats without a word from the server: the connection is dead even if TCP has not noticed.
  _arm() {
    clearTimeout(this._watchdog);
    this._watchdog = setTimeout(() => {
      if (this.ws) this.ws.close(4000, "heartbeat lost");
    }, this.heartbeatS * 3000 + 2000);
  }

  _closed(ws, ev) {
    if (ws !== this.ws) return;
    clearTimeout(this._watchdog);
    this.ws = null;
    if (this._stopped) return;
    const reason = ev.reason || (ev.code === 1006 ? "connection lost" : `closed (${ev.code})`);
    if (ev.code === CLOSE_UNAUTHORIZED) {
      this.lastError = reason;
      this._setStatus("closed");
      this.dispatchEvent(new CustomEvent("unauthorized", { detail: reason }));
      return;
    }
    if (ev.code === CLOSE_FORBIDDEN || ev.code === CLOSE_TAKEN_OVER) {
      this.lastError = ev.code === CLOSE_TAKEN_OVER ? "this desk was opened in another tab or window" : reason;
      this._setStatus("closed");
      this.dispatchEvent(new CustomEvent(ev.code === CLOSE_FORBIDDEN ? "forbidden" : "taken_over",
        { detail: this.lastError }));
      return;
    }
    this._scheduleRetry(reason);
  }

  _scheduleRetry(reason) {
    this.lastError = reason;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this._setStatus("reconnecting");
    this._retryTimer = setTimeout(() => this.connect(), delay);
  }

  _setStatus(status) {
    if (status === this.status && status !== "reconnecting") return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", {
      detail: { status, attempt: this.attempt, retryAt: this.retryAt, error: this.lastError },
    }));
  }
}
