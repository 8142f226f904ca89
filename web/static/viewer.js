// framecast viewer: receives binary frames (docs/protocol.md) over a
// WebSocket and draws them on a canvas with createImageBitmap.
//
// - Latest frame wins here too: while one image decodes, only the newest
//   arrival waits; older ones are skipped and counted.
// - Reconnects with exponential backoff and jitter; a gateway shutting down
//   (1001) or dying sends us to another replica through the proxy.
// - Pauses while the tab is hidden (closes the socket), resumes when shown.
// - window.framecast exposes the counters, for people and for tests.
"use strict";
(() => {
  const HEADER = 20, KIND_JPEG = 1, KIND_OFFLINE = 2, STALE_MS = 3000;
  const stage = document.getElementById("stage");
  const canvas = document.getElementById("screen");
  const ctx2d = canvas.getContext("2d");
  const overlay = document.getElementById("overlay");
  const stateEl = document.getElementById("state");
  const room = stage.dataset.room;
  const token = new URLSearchParams(window.location.search).get("token");

  const stats = {
    state: "connecting", frames: 0, drawn: 0, skipped: 0, fps: 0, latencyMs: null,
    lastSeq: null, lastFrameAt: 0, connects: 0, width: 0, height: 0,
  };
  window.framecast = stats;

  let ws = null, backoff = 500, retryTimer = null;
  let decoding = false, pending = null;
  let fpsWindow = [];

  function setState(s) {
    stats.state = s;
    stateEl.textContent = s;
    stateEl.className = "state " + s;
  }

  function url() {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    let u = proto + "//" + window.location.host + "/ws/video/" + encodeURIComponent(room) + "/?role=view&format=binary";
    if (token) u += "&token=" + encodeURIComponent(token);
    return u;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (document.hidden) { setState("paused"); return; }
    setState("connecting");
    const sock = new WebSocket(url());
    sock.binaryType = "arraybuffer";
    ws = sock;
    sock.onopen = () => { backoff = 500; stats.connects++; setState("offline"); };
    sock.onmessage = (ev) => { if (ws === sock && ev.data instanceof ArrayBuffer) onFrame(ev.data); };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      if (document.hidden) { setState("paused"); return; }
      setState("connecting");
      const delay = backoff * (0.5 + Math.random());
      backoff = Math.min(backoff * 2, 10000);
      retryTimer = setTimeout(connect, delay);
    };
  }

  function onFrame(buf) {
    if (buf.byteLength < HEADER) return;
    const dv = new DataView(buf);
    if (dv.getUint8(0) !== 1) return;
    const kind = dv.getUint8(1), hlen = dv.getUint16(2);
    const seq = Number(dv.getBigUint64(4));
    const captured = Number(dv.getBigInt64(12)) / 1000; // ms
    if (kind === KIND_OFFLINE) { setState("offline"); return; }
    if (kind !== KIND_JPEG || hlen > buf.byteLength) return;
    stats.frames++;
    if (stats.lastSeq !== null && seq > stats.lastSeq + 1) stats.skipped += seq - stats.lastSeq - 1;
    stats.lastSeq = seq;
    stats.lastFrameAt = Date.now();
    stats.latencyMs = Date.now() - captured;
    if (stats.state !== "live") setState("live");
    if (pending) stats.skipped++;
    pending = new Blob([new Uint8Array(buf, hlen)], { type: "image/jpeg" });
    if (!decoding) drawNext();
  }

  async function drawNext() {
    decoding = true;
    while (pending) {
      const blob = pending;
      pending = null;
      try {
        const bmp = await createImageBitmap(blob);
        if (canvas.width !== bmp.width || canvas.height !== bmp.height) {
          canvas.width = bmp.width;
          canvas.height = bmp.height;
        }
        ctx2d.drawImage(bmp, 0, 0);
        stats.width = bmp.width;
        stats.height = bmp.height;
        bmp.close();
        stats.drawn++;
        fpsWindow.push(performance.now());
      } catch (e) {
        stats.skipped++;
      }
    }
    decoding = false;
  }

  setInterval(() => {
    const now = performance.now();
    fpsWindow = fpsWindow.filter((t) => now - t < 1000);
    stats.fps = fpsWindow.length;
    if (stats.state === "live" && Date.now() - stats.lastFrameAt > STALE_MS) setState("offline");
    const lat = stats.latencyMs === null ? "–" : Math.max(0, Math.round(stats.latencyMs)) + " ms";
    overlay.textContent = "fps " + stats.fps + " · latency " + lat + " · skipped " + stats.skipped;
  }, 250);

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      if (ws) { const s = ws; ws = null; s.close(1000, "tab hidden"); }
      clearTimeout(retryTimer);
      setState("paused");
    } else if (!ws) {
      backoff = 500;
      connect();
    }
  });

  connect();
})();
