// The browser end of a call's audio: the server sends an SDP offer (rtc_offer {call_id, sdp}), this
// module answers it with the microphone and plays what the server sends in an <audio> element. aiortc
// gathers its candidates before it offers, and so do we before answering: no trickle ICE. One peer per
// call id; a new offer for the same call (after a reconnect) replaces the old peer.
//
//   const rtc = new RtcAudio({ audio: document.getElementById("remote-audio") });
//   const sdp = await rtc.answer(call_id, offer_sdp);     // send {type: "rtc_answer", call_id, sdp}
//   rtc.setMuted(true);  rtc.close(call_id);
//   rtc.levels()  -> {rx, tx} in 0..1;  rtc.peakHz() -> the loudest frequency the speaker plays (tests)
//
// Used by the agent page and, for listen/whisper/barge, by the supervisor page.

const GATHER_TIMEOUT_MS = 3000;
const MIC_CONSTRAINTS = { audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true }, video: false };

export class RtcAudio extends EventTarget {
  constructor({ audio }) {
    super();
    this.audio = audio;
    this.peers = new Map();      // call_id -> RTCPeerConnection
    this.mic = null;             // MediaStream of the microphone (asked for once, kept for the day)
    this.muted = false;
    this._ctx = null;
    this._rx = null;             // AnalyserNode on what we hear
    this._tx = null;             // AnalyserNode on the microphone
  }

  /** Ask for the microphone now (on a click), so the first call does not wait for a permission prompt. */
  async microphone() {
    if (this.mic && this.mic.getAudioTracks().some((t) => t.readyState === "live")) return this.mic;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this browser cannot use a microphone here (the page needs https or localhost)");
    }
    try {
      this.mic = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
    } catch (err) {
      const why = err && err.name === "NotAllowedError" ? "the browser refused the microphone (allow it for this site)"
        : err && err.name === "NotFoundError" ? "no microphone was found" : `the microphone failed: ${err && err.message}`;
      throw new Error(why);
    }
    for (const t of this.mic.getAudioTracks()) t.enabled = !this.muted;
    this._tx = this._analyser(this.mic);
    return this.mic;
  }

  /** Answer the server's offer for ``callId``; resolves to the answer SDP (with candidates). */
  async answer(callId, offerSdp) {
    this.close(callId);
    const mic = await this.microphone();
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    this.peers.set(callId, pc);
    pc.ontrack = (ev) => {
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      this.audio.srcObject = stream;
      this._rx = this._analyser(stream);
      this.audio.play().catch((err) => this._emit("error", `the speaker would not play: ${err.message}`));
    };
    pc.onconnectionstatechange = () => {
      this._emit("state", { callId, state: pc.connectionState });
      if (pc.connectionState === "failed") this._emit("error", "the call's audio connection failed");
    };
    for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
    await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    return pc.localDescription.sdp;
  }

  /** Stop sending the microphone (the server's mute is what the caller notices; this is belt and braces). */
  setMuted(on) {
    this.muted = Boolean(on);
    if (this.mic) for (const t of this.mic.getAudioTracks()) t.enabled = !this.muted;
  }

  close(callId) {
    const pc = this.peers.get(callId);
    if (!pc) return;
    this.peers.delete(callId);
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    pc.close();
    if (!this.peers.size) {
      this.audio.srcObject = null;
      this._rx = null;
    }
  }

  closeAll() { for (const id of [...this.peers.keys()]) this.close(id); }

  state(callId) {
    const pc = this.peers.get(callId);
    return pc ? pc.connectionState : "none";
  }

  /** Loudness now, 0..1: rx = what the speaker plays, tx = what the microphone picks up. */
  levels() { return { rx: rms(this._rx), tx: this.muted ? 0 : rms(this._tx) }; }

  /** The frequency (Hz) of the loudest bin of what the speaker plays, or 0 in silence (for tone tests). */
  peakHz() {
    const a = this._rx;
    if (!a) return 0;
    const bins = new Float32Array(a.frequencyBinCount);
    a.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (!(bins[best] > -70)) return 0;
    return (best * a.context.sampleRate) / a.fftSize;
  }

  _analyser(stream) {
    try {
      this._ctx = this._ctx || new AudioContext();
      if (this._ctx.state === "suspended") this._ctx.resume().catch(() => {});
      const node = this._ctx.createAnalyser();
      node.fftSize = 4096;
      node.smoothingTimeConstant = 0.3;
      this._ctx.createMediaStreamSource(stream).connect(node);
      return node;
    } catch {
      return null;   // meters are a nicety: audio works without them
    }
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}

function rms(analyser) {
  if (!analyser) return 0;
  const buf = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(buf);
  let sum = 0;
  for (const x of buf) sum += x * x;
  return Math.min(1, Math.sqrt(sum / buf.length) * 4);
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => { pc.removeEventListener("icegatheringstatechange", done); resolve(); },
      GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", done);
  });
}
