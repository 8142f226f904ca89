// framecast viewer: receives binary frames (docs/protocol.md) over a
// WebSocket and draws them on a canvas with createImageBitmap.
//
// - Asks for the room's smallest layer at least as wide as the canvas
//   shows its picture (displayed width × devicePixelRatio): format=binary,
//   v=2, width=N. When the window is resized it sends
//   {"type":"select","width":N} (debounced, only when N changes), without
//   reconnecting. Frames arrive as version-2 messages naming their layer;
//   a gateway or room without layers works the same (layer 0).
// - Latest frame wins here too: while one image decodes, only the newest
//   arrival waits; older ones are skipped and counted.
// - Reconnects with exponential backoff and jitter; a gateway shutting down
//   (1001) or dying sends us to another replica through the proxy.
// - Pauses while the tab is hidden (closes the socket), resumes when shown.
// - The overlay shows fps, latency, skipped frames, the layer received
//   (index and width×height) and kB/s received.
// - window.framecast exposes the counters, for people and for tests.
"use strict";
(() => {
  const W = window.FramecastWire;
  const STALE_MS = 3000, RESIZE_DEBOUNCE_MS = 250;
  const stage = document.getElementById("stage");
  const canvas = document.getElementById("screen");
  const ctx2d = canvas.getContext("2d");
  const overlay = document.getElementById("overlay");
  const stateEl = document.getElementById("state");
  const room = stage.dataset.room;

  const stats = {
    state: "connecting", frames: 0, drawn: 0, skipped: 0, fps: 0, latencyMs: null,
    lastSeq: null, lastFrameAt: 0, connects: 0, width: 0, height: 0,
    // Layers: what we asked for, what frames say we get, what the gateway
    // said (its last "layer" message) and the room's layer list.
    askedWidth: 0, selects: 0, layer: null, layerWidth: 0, layerHeight: 0,
    gatewayLayer: null, layers: [], bytes: 0, kBps: 0, controlErrors: [],
  };
  window.framecast = stats;

  const meter = new W.Meter(), rate = new W.Rate();
  let decoding = false, pending = null;

  function setState(s) {
    stats.state = s;
    stateEl.textContent = s;
    stateEl.className = "state " + s;
  }

  const sock = new W.ReconnectingSocket({
    url: () => {
      stats.askedWidth = W.wantedWidth(canvas);
      return W.socketURL("/ws/video/" + encodeURIComponent(room) + "/",
        { role: "view", format: "binary", v: "2", width: stats.askedWidth });
    },
    onOpen: () => { stats.connects++; setState("offline"); },
    onFrame, onControl, onState: setState,
  });

  // onControl handles the gateway's text messages on a v=2 connection.
  function onControl(text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return; }
    if (m.type === "layers" && Array.isArray(m.layers)) stats.layers = m.layers;
    else if (m.type === "layer") stats.gatewayLayer = { layer: m.layer, width: m.width, height: m.height, reason: m.reason };
    else if (m.type === "error") stats.controlErrors.push(m.reason);
  }

  function onFrame(buf) {
    stats.bytes += buf.byteLength;
    meter.add(buf.byteLength);
    const f = W.parse(buf);
    if (!f) return;
    if (f.kind === W.KIND_OFFLINE) { setState("offline"); return; }
    stats.frames++;
    if (stats.lastSeq !== null && f.seq > stats.lastSeq + 1) stats.skipped += f.seq - stats.lastSeq - 1;
    stats.lastSeq = f.seq;
    stats.lastFrameAt = Date.now();
    stats.latencyMs = Date.now() - f.capturedMs;
    if (f.layer !== null) {
      stats.layer = f.layer;
      stats.layerWidth = f.width;
      stats.layerHeight = f.height;
    }
    if (stats.state !== "live") setState("live");
    if (pending) stats.skipped++;
    pending = new Blob([f.jpeg], { type: "image/jpeg" });
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
        if (stats.layer === null) { // a version-1 gateway: the picture is the layer
          stats.layerWidth = bmp.width;
          stats.layerHeight = bmp.height;
        }
        bmp.close();
        stats.drawn++;
        rate.add();
      } catch (e) {
        stats.skipped++;
      }
    }
    decoding = false;
  }

  // reselect asks for the layer that fits the canvas now, if that width
  // differs from the one asked for last. A closed socket asks on its next
  // connect instead.
  function reselect() {
    const want = W.wantedWidth(canvas);
    if (want === stats.askedWidth || !sock.open) return;
    stats.askedWidth = want;
    stats.selects++;
    sock.send(JSON.stringify({ type: "select", width: want }));
  }

  W.onDisplayChange(canvas, reselect, RESIZE_DEBOUNCE_MS);

  setInterval(() => {
    stats.fps = rate.perSecond();
    stats.kBps = meter.kBps();
    if (stats.state === "live" && Date.now() - stats.lastFrameAt > STALE_MS) setState("offline");
    const lat = stats.latencyMs === null ? "–" : Math.max(0, Math.round(stats.latencyMs)) + " ms";
    const layer = stats.layerWidth ? "layer " + (stats.layer === null ? 0 : stats.layer) + " " +
      stats.layerWidth + "×" + stats.layerHeight : "layer –";
    overlay.textContent = "fps " + stats.fps + " · latency " + lat + " · skipped " + stats.skipped +
      " · " + layer + " · " + W.formatKBps(stats.kBps);
  }, 250);

  sock.connect();
})();
