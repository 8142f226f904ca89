// framecast wire helpers shared by the viewer page (viewer.js) and the
// camera wall (grid.js): parsing frame messages, both versions
// (docs/protocol.md: "Binary frame message", "Layers" and "Compressed
// video"), the H.264 configuration payload, the width a
// canvas should ask for, a bytes-per-second meter, the socket URL and a
// small DOM helper. Loaded before the page's own scripts; defines
// window.FramecastWire.
"use strict";
window.FramecastWire = (() => {
  const V1_HEADER = 20, BLOCK_FIXED = 11;
  const KIND_JPEG = 1, KIND_OFFLINE = 2, KIND_H264_CONFIG = 3, KIND_H264_KEY = 4, KIND_H264_DELTA = 5;
  const ascii = new TextDecoder("ascii");

  // parse decodes one binary message: version 1 (header + payload) or
  // version 2 (layer block + version-1 message). It returns null for
  // anything malformed, else {kind, seq, capturedUs, capturedMs, layer,
  // width, height, room, payload, jpeg} where layer/width/height/room are
  // null for version 1, payload is a Uint8Array view of what follows the
  // header (empty for offline) and jpeg is the same view for kind JPEG
  // (null otherwise). The H.264 kinds are only valid in version 2.
  function parse(buf) {
    if (buf.byteLength < 1) return null;
    const dv = new DataView(buf);
    let at = 0, block = null;
    if (dv.getUint8(0) === 2) {
      if (buf.byteLength < BLOCK_FIXED) return null;
      const e = dv.getUint16(2), n = dv.getUint8(10);
      if (e !== BLOCK_FIXED + n || buf.byteLength < e) return null;
      block = {
        kind: dv.getUint8(1), layer: dv.getUint8(4), width: dv.getUint16(6), height: dv.getUint16(8),
        room: ascii.decode(new Uint8Array(buf, BLOCK_FIXED, n)),
      };
      at = e;
    }
    if (buf.byteLength < at + V1_HEADER || dv.getUint8(at) !== 1) return null;
    const kind = dv.getUint8(at + 1), hlen = dv.getUint16(at + 2);
    if (hlen !== V1_HEADER) return null;
    const capturedUs = Number(dv.getBigInt64(at + 12));
    const out = {
      kind, seq: Number(dv.getBigUint64(at + 4)), capturedUs, capturedMs: capturedUs / 1000,
      layer: block && block.layer, width: block && block.width,
      height: block && block.height, room: block && block.room,
      payload: new Uint8Array(buf, at + hlen), jpeg: null,
    };
    if (block && block.kind !== kind) return null;
    if (kind === KIND_JPEG) out.jpeg = out.payload;
    else if (kind >= KIND_H264_CONFIG && kind <= KIND_H264_DELTA) { if (!block) return null; }
    else if (kind !== KIND_OFFLINE) return null;
    return out;
  }

  // parseH264Config decodes a configuration payload (kind 3): codec-string
  // length n (1-64), the codec string, coded width and height (2 bytes
  // each), then the parameter sets. It returns null if malformed, else
  // {codec, codedWidth, codedHeight, bytes} where bytes is the whole
  // payload (a page compares it to tell a new configuration from a repeat).
  function parseH264Config(p) {
    if (p.byteLength < 1) return null;
    const n = p[0];
    if (n < 1 || n > 64 || p.byteLength < 5 + n) return null;
    const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    return {
      codec: ascii.decode(p.subarray(1, 1 + n)),
      codedWidth: dv.getUint16(1 + n), codedHeight: dv.getUint16(3 + n), bytes: p,
    };
  }

  // sameBytes reports whether Uint8Arrays a and b hold the same bytes.
  function sameBytes(a, b) {
    if (!a || !b || a.byteLength !== b.byteLength) return false;
    for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  // wantedWidth is the width in device pixels at which canvas shows its
  // picture: its box's width, or less when the box is limited in height
  // (object-fit: contain), times devicePixelRatio, rounded; at least 1.
  function wantedWidth(canvas) {
    const r = canvas.getBoundingClientRect();
    const aspect = canvas.width && canvas.height ? canvas.width / canvas.height : 4 / 3;
    const shown = Math.min(r.width, r.height > 0 ? r.height * aspect : r.width);
    return Math.max(1, Math.round(shown * (window.devicePixelRatio || 1)));
  }

  // onDisplayChange calls fn, debounced by ms, whenever el may show its
  // pictures at another size in device pixels: the window is resized, el's
  // box changes, or devicePixelRatio changes (zoom, a move to another
  // screen) without a resize.
  function onDisplayChange(el, fn, ms = 250) {
    let timer = null, ratio = window.devicePixelRatio;
    const later = () => {
      ratio = window.devicePixelRatio; // what fn will see
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
    window.addEventListener("resize", later);
    if (window.ResizeObserver) new ResizeObserver(later).observe(el);
    // A media query on the ratio does not fire for every change (Chromium's
    // device emulation), so the ratio is polled: cheap, once a second.
    setInterval(() => { if (window.devicePixelRatio !== ratio) later(); }, 1000);
  }

  // Meter counts bytes received and reports kB/s over its last window.
  class Meter {
    constructor(windowMs = 2000) { this.windowMs = windowMs; this.samples = []; this.total = 0; }
    add(n) { this.samples.push([performance.now(), n]); this.total += n; }
    kBps() {
      const now = performance.now();
      while (this.samples.length && now - this.samples[0][0] > this.windowMs) this.samples.shift();
      let sum = 0;
      for (const s of this.samples) sum += s[1];
      return sum / this.windowMs; // bytes per ms = kB/s
    }
  }

  // Rate counts events (frames drawn) in the last second.
  class Rate {
    constructor() { this.times = []; }
    add() { this.times.push(performance.now()); }
    perSecond() {
      const now = performance.now();
      while (this.times.length && now - this.times[0] >= 1000) this.times.shift();
      return this.times.length;
    }
  }

  function formatKBps(k) { return (k < 10 ? k.toFixed(1) : Math.round(k)) + " kB/s"; }

  // socketURL is the ws(s):// URL of path on this page's host with the
  // query params (values encoded), and the page's own ?token= if any.
  // Params whose value is "" or null are left out.
  function socketURL(path, params) {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + window.location.host + withToken(path, params);
  }

  // withToken is path with the query params and the page's ?token=, for
  // links and fetches of the page's own host.
  function withToken(path, params = {}) {
    const q = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)
      .map(([k, v]) => k + "=" + encodeURIComponent(v));
    const token = pageToken();
    if (token) q.push("token=" + encodeURIComponent(token));
    return path + (q.length ? "?" + q.join("&") : "");
  }

  // pageToken is the page's ?token= (a view token, for GATEWAY_AUTH=all),
  // or null: passed on to the page's WebSocket and links.
  function pageToken() { return new URLSearchParams(window.location.search).get("token"); }

  // Backoff is the reconnect delay: from 500 ms, doubling up to 10 s, each
  // delay jittered between 0.5× and 1.5×; reset once a socket opens.
  class Backoff {
    constructor() { this.reset(); }
    reset() { this.ms = 500; }
    next() { const d = this.ms * (0.5 + Math.random()); this.ms = Math.min(this.ms * 2, 10000); return d; }
  }

  // ReconnectingSocket keeps one WebSocket to opts.url() (called at each
  // connect) open while the tab is visible: it reconnects with Backoff
  // after a close (a gateway shutting down with 1001 or dying sends the
  // page to another replica through the proxy), closes the socket while
  // the tab is hidden and reconnects when it is shown. Binary messages go
  // to opts.onFrame(ArrayBuffer), text to opts.onControl(string);
  // opts.onState(s) hears "connecting", "paused" and, through opts.onOpen
  // and opts.onClose, whatever the page makes of those.
  class ReconnectingSocket {
    constructor(opts) {
      this.opts = opts;
      this.ws = null;
      this.timer = null;
      this.backoff = new Backoff();
      document.addEventListener("visibilitychange", () => {
        if (document.hidden) this.pause();
        else if (!this.ws) { this.backoff.reset(); this.connect(); }
      });
    }

    get open() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

    send(text) { if (this.open) this.ws.send(text); }

    pause() {
      if (this.ws) { const s = this.ws; this.ws = null; s.close(1000, "tab hidden"); }
      clearTimeout(this.timer);
      this.opts.onState("paused");
    }

    connect() {
      clearTimeout(this.timer);
      if (document.hidden) { this.opts.onState("paused"); return; }
      this.opts.onState("connecting");
      const sock = new WebSocket(this.opts.url());
      sock.binaryType = "arraybuffer";
      this.ws = sock;
      sock.onopen = () => { this.backoff.reset(); this.opts.onOpen(); };
      sock.onmessage = (ev) => {
        if (this.ws !== sock) return;
        if (ev.data instanceof ArrayBuffer) this.opts.onFrame(ev.data);
        else this.opts.onControl(ev.data);
      };
      sock.onclose = () => {
        if (this.ws !== sock) return;
        this.ws = null;
        if (this.opts.onClose) this.opts.onClose();
        if (document.hidden) { this.opts.onState("paused"); return; }
        this.opts.onState("connecting");
        this.timer = setTimeout(() => this.connect(), this.backoff.next());
      };
    }
  }

  // el makes a tag element with class cls and, if given, text.
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  return {
    ReconnectingSocket, parse, el, parseH264Config, sameBytes, wantedWidth, onDisplayChange, Meter, Rate,
    formatKBps, socketURL, withToken, pageToken, Backoff,
    KIND_JPEG, KIND_OFFLINE, KIND_H264_CONFIG, KIND_H264_KEY, KIND_H264_DELTA,
  };
})();
