// Small pieces the agent desk and the supervisor board share: text formatting, the error banner, the ring tone.

export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
export const pad = (n) => String(n).padStart(2, "0");
export const nowS = () => Date.now() / 1000;
export const reasonText = (r) => String(r || "").replace(/[_-]+/g, " ");
export const hhmm = (d = new Date()) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

/** Seconds as m:ss or h:mm:ss ("—" for nothing). */
export function clock(s) {
  if (s == null || !Number.isFinite(s)) return "—";
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

/** The page's error banner (#error, #error-text, #error-close): say it plainly, go away after a while. */
export function errorBanner(doc = document, keepMs = 20000) {
  const box = doc.getElementById("error");
  const text = doc.getElementById("error-text");
  let timer = 0;
  const show = (message) => {
    text.textContent = message;
    box.hidden = !message;
    clearTimeout(timer);
    if (message) timer = setTimeout(() => { box.hidden = true; }, keepMs);
  };
  doc.getElementById("error-close").addEventListener("click", () => show(""));
  return show;
}

/** The ring of an incoming call: 440 + 480 Hz, 2 s on, 4 s off (the North American ring), quietly. */
export class Ringer {
  constructor() { this.ctx = null; this.timer = 0; this.nodes = []; }

  start() {
    this.stop();
    try {
      this.ctx = this.ctx || new AudioContext();
      if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    } catch { return; }
    const burst = () => {
      const g = this.ctx.createGain();
      g.gain.value = 0.06;
      g.connect(this.ctx.destination);
      const t = this.ctx.currentTime;
      for (const f of [440, 480]) {
        const o = this.ctx.createOscillator();
        o.frequency.value = f;
        o.connect(g);
        o.start(t);
        o.stop(t + 2);
        this.nodes.push(o);
      }
    };
    burst();
    this.timer = setInterval(burst, 6000);
  }

  stop() {
    clearInterval(this.timer);
    for (const o of this.nodes) { try { o.stop(); } catch { /* already */ } }
    this.nodes = [];
  }
}
