// framecast viewer: receives binary frames (docs/protocol.md) over a
// WebSocket and draws them on a canvas: JPEG with createImageBitmap,
// H.264 with WebCodecs' VideoDecoder.
//
// - Asks for the room's smallest layer at least as wide as the canvas
//   shows its picture (displayed width × devicePixelRatio): format=binary,
//   v=2, width=N. When the window is resized it sends
//   {"type":"select","width":N} (debounced, only when N changes), without
//   reconnecting. Frames arrive as version-2 messages naming their layer;
//   a gateway or room without layers works the same (layer 0).
// - Codec. The page uses the room's H.264 layers when the room has them
//   and this browser can decode them, else its JPEG layers:
//   * It learns the room's layers from /api/rooms (the `layers` message of
//     a JPEG connection lists only JPEG layers): before connecting, and
//     while it receives JPEG but could decode H.264, after PROBE_MS and
//     then at doubling intervals up to PROBE_MAX_MS (a page per viewer
//     asking every few seconds would load the gateways), so a room that
//     starts sending H.264 later is picked up. Connecting with
//     codec=h264 straight away saves a JPEG start; a later change is a
//     `select` with "codec" on the same connection.
//   * It can decode when window.VideoDecoder exists (WebCodecs needs a
//     secure context: https, localhost or 127.0.0.1; a page on plain http
//     from another host has none) and VideoDecoder.isConfigSupported says
//     yes for the configuration the gateway sends (checked per codec
//     string and size, answers remembered). A "no" falls back to JPEG for
//     the rest of the page's life.
//   * On H.264, a `layers` message with no layer (the room stopped sending
//     H.264) goes back to JPEG; the /api/rooms check may bring it back.
// - H.264 decoding: a configuration message (kind 3) configures the
//   decoder with {codec, codedWidth, codedHeight, optimizeForLatency} and
//   no description (Annex B, parameter sets in-band); one with the same
//   bytes as the current one changes nothing, a different one resets and
//   reconfigures. Keyframes and deltas become EncodedVideoChunks (timestamp
//   = capture time in µs); every decoded VideoFrame is drawn on the canvas
//   and closed. A `layer` message that changes layer or codec, and a new
//   connection, reset at the next configuration and wait for its keyframe.
// - Latest frame wins, by pictures: when more than QUEUE_MAX chunks have
//   been waiting in the decoder for over BACKLOG_MS, a delta is dropped
//   (skipped), and so is every delta up to the next keyframe, which the
//   gateway's own drops also resume at; a keyframe that finds the queue
//   long resets the decoder first, discarding the backlog. The grace
//   period is for the group of pictures the gateway hands a joining viewer
//   in one piece (instant start: up to a keyframe interval of pictures at
//   once), which a decoder that keeps up works off in well under it; one
//   that cannot keep up is cut back within BACKLOG_MS, so the queue stays
//   bounded (QUEUE_MAX + a group + BACKLOG_MS of pictures). For JPEG: while one image decodes, only
//   the newest arrival waits; older ones are skipped and counted.
// - A decoder error closes the decoder: the next configuration (which
//   comes with every keyframe, at the publisher's keyframe interval, 2 s
//   by default) configures a new one. A `select` of the same layer would
//   not make the gateway re-join (it only answers), so the page just waits.
//   A second error within ERROR_WINDOW_MS falls back to JPEG
//   ({"type":"select","width":N,"codec":"jpeg"}) for the rest of the
//   page's life: a stream this browser keeps failing on is better as JPEG.
// - Reconnects with exponential backoff and jitter; a gateway shutting down
//   (1001) or dying sends us to another replica through the proxy.
// - Pauses while the tab is hidden (closes the socket), resumes when shown.
// - The overlay shows fps, latency (capture to receipt for JPEG, capture
//   to decoded picture for H.264), skipped frames, the codec, the layer
//   received (index and width×height) and kB/s received.
// - Recordings (docs/protocol.md, "Playback"; timeline.js draws the
//   timeline under the picture): the timeline's requests become
//   {"type":"seek","at":"<ms>"} and {"type":"live"} on this connection.
//   A `playback` message starts the recording's stream: the decoder (or
//   the JPEG waiting) of what came before is dropped, and H.264 pictures
//   captured before its `ms` (the group from the keyframe before the time
//   asked) are decoded but not drawn. `live` does the same the other way,
//   with a notice when the recording ran out (caught_up) or failed. An
//   `error` naming the room (nothing recorded then) is shown briefly. The
//   time being shown is the capture time of the picture on the canvas. A
//   connection that ends during playback seeks again, from that time, on
//   the next one. Where the gateway keeps no recordings the timeline stays
//   hidden and nothing of this happens.
// - A link to a moment: ?at= in the page's address (any time form the
//   gateway takes: RFC 3339, Unix ms, -30s) seeks there on the first
//   connection. The address follows what is shown: a playback puts its
//   time in it (RFC 3339; a relative ?at= is pinned), LIVE or a recording
//   that runs out takes it out, so a reload or a copied address shows the
//   same moment.
// - window.framecast exposes the counters, for people and for tests.
"use strict";
(() => {
  const W = window.FramecastWire;
  const STALE_MS = 3000, RESIZE_DEBOUNCE_MS = 250;
  const H264 = "h264", JPEG = "jpeg";
  const QUEUE_MAX = 4;             // decodeQueueSize past which deltas are dropped...
  const BACKLOG_MS = 500;          // ...once it has stayed past it this long
  const ERROR_WINDOW_MS = 10000;   // a second decoder error within this falls back to JPEG
  const PROBE_MS = 5000, PROBE_MAX_MS = 60000; // a JPEG page that could decode H.264 checks /api/rooms
                                               // after 5 s, then doubling to every 60 s
  const PROBE_TIMEOUT_MS = 2000;   // a slow /api/rooms does not hold up the first connect longer
  const MAX_BUFFERED = 60;         // chunks kept while isConfigSupported answers
  const stage = document.getElementById("stage");
  const canvas = document.getElementById("screen");
  const ctx2d = canvas.getContext("2d");
  const overlay = document.getElementById("overlay");
  const stateEl = document.getElementById("state");
  const timelineEl = document.getElementById("timeline");
  const room = stage.dataset.room;
  const hasWebCodecs = typeof window.VideoDecoder === "function";

  const stats = {
    state: "connecting", frames: 0, drawn: 0, skipped: 0, fps: 0, latencyMs: null,
    lastSeq: null, lastFrameAt: 0, connects: 0, width: 0, height: 0,
    // Layers: what we asked for, what frames say we get, what the gateway
    // said (its last "layer" message) and the room's layer list.
    askedWidth: 0, selects: 0, layer: null, layerWidth: 0, layerHeight: 0,
    gatewayLayer: null, layers: [], bytes: 0, kBps: 0, controlErrors: [],
    // Codec: what the page asks for (want) and what it receives (codec);
    // h264Off says why H.264 is not used ("" while it may be).
    want: JPEG, codec: JPEG, webCodecs: hasWebCodecs,
    h264Off: hasWebCodecs ? "" : "no WebCodecs (needs a secure context: https or localhost)",
    // H.264: chunks decoded into pictures, configurations applied, the
    // last isConfigSupported answer, decoder errors, deltas dropped here.
    decoded: 0, configures: 0, supported: null, decoderErrors: 0, lastDecoderError: "",
    dropped: 0, fallbacks: 0,
    // The room sends H.264 (its last /api/rooms entry lists an H.264 layer).
    roomH264: false,
    // The page's first picture: ms after navigation began, and (H.264) the
    // sequence number of the first chunk decoded.
    firstDrawnMs: null, firstSeq: null,
    // Playback: "live" or "playback"; the capture time (ms) of the picture
    // on the canvas; the last `playback` message ({atMs, codec} and the
    // capture time of the first picture drawn after it); the reason of the
    // last `live` message; seek and live messages sent; H.264 pictures
    // decoded and not drawn (before a playback's time); the timeline's own
    // state (timeline.js).
    mode: "live", shownMs: null, playback: null, liveReason: "", seeksSent: 0, livesSent: 0,
    hidden: 0, timeline: null,
  };
  window.framecast = stats;

  const meter = new W.Meter(), rate = new W.Rate();
  let decoding = false, pending = null; // pending: the newest JPEG waiting {blob, capturedMs, epoch}
  // epoch counts stream changes (playback, live): a picture decoded for an
  // older one is not drawn. hideBeforeUs: H.264 pictures captured before it
  // are decoded, not drawn.
  let epoch = 0, hideBeforeUs = 0;

  function setState(s) {
    stats.state = s;
    stateEl.textContent = s;
    stateEl.className = "state " + s;
  }

  const sock = new W.ReconnectingSocket({
    url: () => {
      stats.askedWidth = W.wantedWidth(canvas);
      return W.socketURL("/ws/video/" + encodeURIComponent(room) + "/",
        { role: "view", format: "binary", v: "2", width: stats.askedWidth, codec: stats.want === H264 ? H264 : "" });
    },
    onOpen: () => {
      stats.connects++;
      stats.lastSeq = null;
      probeMs = PROBE_MS;
      scheduleProbe();
      dec.resetAtConfig = true; // a new connection starts at a configuration and its keyframe
      dec.waitKey = true;
      setState("offline");
      // A new connection is live: one that ended during playback goes back
      // to where it was.
      if (stats.mode === "playback") {
        const resume = stats.shownMs;
        enterMode("live");
        if (resume !== null) sendSeek(resume);
      } else if (stats.connects === 1 && linkAt) {
        stats.seeksSent++;
        sock.send(JSON.stringify({ type: "seek", at: linkAt }));
      }
    },
    onFrame, onControl, onState: setState,
  });

  // onControl handles the gateway's text messages on a v=2 connection.
  function onControl(text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return; }
    if (m.type === "layers" && Array.isArray(m.layers)) {
      stats.layers = m.layers;
      // On H.264 the list is the room's H.264 layers: none means it sends none.
      if (stats.want === H264 && m.layers.length === 0) switchCodec(JPEG);
    } else if (m.type === "layer") {
      const prev = stats.gatewayLayer, codec = m.codec || JPEG;
      if (codec === H264 && (!prev || prev.layer !== m.layer || prev.codec !== codec)) {
        dec.resetAtConfig = true; // another stream: its own configuration and keyframe come next
        dec.waitKey = true;
      }
      stats.gatewayLayer = { layer: m.layer, width: m.width, height: m.height, reason: m.reason, codec };
    } else if (m.type === "playback") {
      enterMode("playback");
      stats.playback = { atMs: Number(m.ms), codec: m.codec || JPEG, firstShownMs: null };
      hideBeforeUs = Number(m.ms) * 1000;
      setLinkAt(Number(m.ms));
    } else if (m.type === "live") {
      // A `live` for a room that is live already changes no stream: the
      // decoder carries on.
      if (stats.mode !== "live") enterMode("live");
      setLinkAt(null);
      stats.liveReason = m.reason || "";
      if (m.reason === "caught_up") timeline.notice("The recording ran out: live.");
      else if (m.reason === "failed") timeline.notice("The recording could not be read on: live.");
    } else if (m.type === "error") {
      stats.controlErrors.push(m.reason);
      if (m.room !== undefined) { // a seek or live that could not be done
        timeline.cancel();
        timeline.notice(String(m.reason));
      }
    }
  }

  // enterMode starts another stream (a recording's or the live one):
  // what waits to be decoded or drawn belongs to the old one and is
  // dropped; the next configuration starts a new decoder.
  function enterMode(mode) {
    stats.mode = mode;
    epoch++;
    pending = null;
    hideBeforeUs = 0;
    stats.lastSeq = null; // sequence numbers jump: no gap to count
    stats.latencyMs = null;
    if (stats.want === H264) {
      closeDecoder(); // a closed decoder outputs nothing more
      dec.resetAtConfig = true;
    }
    if (stats.state === "live" || stats.state === "playback") setState(mode);
  }

  // The page's ?at= when it was opened (see the top), and setLinkAt, which
  // keeps the address in step: at=<the time asked>, or none while live.
  const linkAt = new URLSearchParams(window.location.search).get("at");
  function setLinkAt(ms) {
    const u = new URL(window.location.href);
    const at = ms === null ? null : new Date(ms).toISOString();
    if (u.searchParams.get("at") === at) return;
    if (at === null) u.searchParams.delete("at"); else u.searchParams.set("at", at);
    window.history.replaceState(null, "", u);
  }

  function sendSeek(ms) {
    if (!sock.open) return;
    stats.seeksSent++;
    sock.send(JSON.stringify({ type: "seek", at: String(Math.round(ms)) }));
  }

  function sendLive() {
    if (!sock.open) return;
    stats.livesSent++;
    sock.send(JSON.stringify({ type: "live" }));
  }

  function onFrame(buf) {
    stats.bytes += buf.byteLength;
    meter.add(buf.byteLength);
    const f = W.parse(buf);
    if (!f) return;
    if (f.kind === W.KIND_OFFLINE) { setState("offline"); return; }
    if (f.kind === W.KIND_H264_CONFIG) { onConfig(f); return; } // not a picture: same seq as its keyframe
    stats.frames++;
    // A JPEG layer sent beside H.264 is a low-rate one numbered with the
    // H.264 pictures (docs/h264.md): its gaps are not skips.
    const companion = f.kind === W.KIND_JPEG && stats.roomH264;
    if (stats.lastSeq !== null && f.seq > stats.lastSeq + 1 && !companion) stats.skipped += f.seq - stats.lastSeq - 1;
    stats.lastSeq = f.seq;
    stats.lastFrameAt = Date.now();
    if (f.layer !== null) {
      stats.layer = f.layer;
      stats.layerWidth = f.width;
      stats.layerHeight = f.height;
    }
    if (stats.state !== stats.mode) setState(stats.mode);
    if (f.kind !== W.KIND_JPEG) { stats.codec = H264; onChunk(f); return; }
    stats.codec = JPEG;
    if (stats.mode === "live") stats.latencyMs = Date.now() - f.capturedMs;
    if (pending) stats.skipped++;
    pending = { blob: new Blob([f.jpeg], { type: "image/jpeg" }), capturedMs: f.capturedMs, epoch };
    if (!decoding) drawNext();
  }

  async function drawNext() {
    decoding = true;
    while (pending) {
      const p = pending;
      pending = null;
      try {
        const bmp = await createImageBitmap(p.blob);
        if (p.epoch === epoch) draw(bmp, bmp.width, bmp.height, p.capturedMs);
        bmp.close();
      } catch (e) {
        stats.skipped++;
      }
    }
    decoding = false;
  }

  // draw puts a picture (an ImageBitmap or a VideoFrame) of w×h captured
  // at capturedMs on the canvas, resizing the canvas to it, and counts it.
  function draw(img, w, h, capturedMs) {
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx2d.drawImage(img, 0, 0, w, h);
    stats.width = w;
    stats.height = h;
    if (stats.layer === null) { // a version-1 gateway: the picture is the layer
      stats.layerWidth = w;
      stats.layerHeight = h;
    }
    stats.drawn++;
    stats.shownMs = capturedMs;
    timeline.setShown(capturedMs, stats.mode === "live");
    if (stats.playback && stats.playback.firstShownMs === null) stats.playback.firstShownMs = capturedMs;
    if (stats.firstDrawnMs === null) stats.firstDrawnMs = Math.round(performance.now());
    rate.add();
  }

  // dec is the H.264 decoder's state. Only this script's event handlers
  // touch it (one thread); generation tells an isConfigSupported answer
  // for an older configuration from the current one.
  const dec = {
    decoder: null,       // a VideoDecoder, or null (none yet, or closed by an error)
    configBytes: null,   // the configuration payload in use (or being checked)
    config: null,        // the VideoDecoderConfig made from it
    checking: false,     // isConfigSupported has not answered yet
    buffered: [],        // chunks waiting for that answer
    waitKey: true,       // deltas are dropped until a keyframe is decoded
    resetAtConfig: true, // the next configuration applies even if its bytes are the same
    generation: 0,
    errorTimes: [],
    backlogSince: 0,     // when decodeQueueSize went past QUEUE_MAX (0: it is not)
    supported: new Map(), // "codec WxH" → isConfigSupported's answer
  };

  function onConfig(f) {
    if (stats.want !== H264) return; // in flight when the page went to JPEG
    const c = W.parseH264Config(f.payload);
    if (!c) return;
    if (!dec.resetAtConfig && W.sameBytes(c.bytes, dec.configBytes)) return; // a repeat: carry on
    const gen = ++dec.generation;
    dec.resetAtConfig = false;
    dec.configBytes = c.bytes.slice();
    dec.config = { codec: c.codec, codedWidth: c.codedWidth, codedHeight: c.codedHeight, optimizeForLatency: true };
    dec.waitKey = true;
    dec.buffered = [];
    const key = c.codec + " " + c.codedWidth + "x" + c.codedHeight;
    if (dec.supported.has(key)) { applyConfig(dec.supported.get(key)); return; }
    dec.checking = true;
    VideoDecoder.isConfigSupported(dec.config).then((r) => !!(r && r.supported), () => false).then((ok) => {
      dec.supported.set(key, ok);
      stats.supported = { codec: c.codec, codedWidth: c.codedWidth, codedHeight: c.codedHeight, supported: ok };
      if (gen === dec.generation) applyConfig(ok);
    });
  }

  // applyConfig (re)configures the decoder with dec.config, or falls back
  // to JPEG if the browser cannot decode it, then feeds what waited.
  function applyConfig(ok) {
    dec.checking = false;
    const waiting = dec.buffered;
    dec.buffered = [];
    if (!ok) { fallBack("cannot decode " + dec.config.codec + " " + dec.config.codedWidth + "×" + dec.config.codedHeight); return; }
    try {
      if (!dec.decoder || dec.decoder.state === "closed") dec.decoder = new VideoDecoder({ output: onPicture, error: onDecoderError });
      else dec.decoder.reset();
      dec.decoder.configure(dec.config);
      stats.configures++;
    } catch (e) {
      onDecoderError(e);
      return;
    }
    for (const f of waiting) onChunk(f);
  }

  // onChunk decodes a keyframe or delta, or drops it (counted as skipped)
  // when it cannot be decoded or the decoder is too far behind.
  function onChunk(f) {
    if (stats.want !== H264) return;
    const key = f.kind === W.KIND_H264_KEY;
    if (dec.checking) {
      if (dec.buffered.length < MAX_BUFFERED) dec.buffered.push(f);
      else { dec.buffered = []; dec.waitKey = true; stats.skipped++; }
      return;
    }
    const d = dec.decoder;
    if (!d || d.state !== "configured" || (!key && dec.waitKey)) { stats.skipped++; stats.dropped++; return; }
    const now = performance.now();
    // A playback's lead-in (the pictures before its time, sent at once)
    // must reach the decoder whole: the backlog clock starts after it.
    const leadIn = f.capturedUs < hideBeforeUs;
    if (leadIn || d.decodeQueueSize <= QUEUE_MAX) dec.backlogSince = 0;
    else if (!dec.backlogSince) dec.backlogSince = now;
    else if (key) { // a newer start: discard the backlog and decode from it
      stats.skipped += d.decodeQueueSize;
      stats.dropped += d.decodeQueueSize;
      d.reset();
      d.configure(dec.config);
      dec.backlogSince = 0;
    } else if (now - dec.backlogSince > BACKLOG_MS) {
      dec.waitKey = true;
      stats.skipped++;
      stats.dropped++;
      return;
    }
    try {
      d.decode(new EncodedVideoChunk({ type: key ? "key" : "delta", timestamp: f.capturedUs, data: f.payload }));
      if (key) dec.waitKey = false;
      if (stats.firstSeq === null) stats.firstSeq = f.seq;
    } catch (e) {
      onDecoderError(e);
    }
  }

  // onPicture draws a decoded picture and closes it, drawn or not. A
  // picture captured before a playback's time only brought the decoder
  // there: it is not drawn.
  function onPicture(frame) {
    try {
      if (stats.want !== H264) return;
      stats.decoded++;
      if (frame.timestamp < hideBeforeUs) { stats.hidden++; return; }
      draw(frame, frame.displayWidth, frame.displayHeight, frame.timestamp / 1000);
      if (stats.mode === "live") stats.latencyMs = Date.now() - frame.timestamp / 1000;
    } finally {
      frame.close();
    }
  }

  function onDecoderError(e) {
    stats.decoderErrors++;
    stats.lastDecoderError = String((e && e.message) || e);
    closeDecoder();
    const now = Date.now();
    dec.errorTimes = dec.errorTimes.filter((t) => now - t < ERROR_WINDOW_MS);
    dec.errorTimes.push(now);
    if (dec.errorTimes.length >= 2) fallBack("decoder errors: " + stats.lastDecoderError);
  }

  // closeDecoder drops the decoder (an error closed it already, or the
  // page leaves H.264): the next configuration starts a new one.
  function closeDecoder() {
    if (dec.decoder && dec.decoder.state !== "closed") {
      try { dec.decoder.close(); } catch (e) { /* closed meanwhile */ }
    }
    dec.decoder = null;
    dec.configBytes = null;
    dec.checking = false;
    dec.buffered = [];
    dec.waitKey = true;
    dec.generation++;
  }

  // fallBack gives up H.264 for the rest of the page's life.
  function fallBack(why) {
    stats.h264Off = why;
    stats.fallbacks++;
    switchCodec(JPEG);
  }

  // switchCodec asks the gateway for codec's layers on this connection (a
  // closed socket asks on its next connect, through stats.want).
  function switchCodec(codec) {
    if (stats.want === codec) return;
    stats.want = codec;
    if (codec === JPEG) closeDecoder();
    dec.resetAtConfig = true;
    stats.lastSeq = null; // the codecs' streams are numbered apart: no gap to count
    if (!sock.open) return;
    stats.askedWidth = W.wantedWidth(canvas);
    stats.selects++;
    sock.send(JSON.stringify({ type: "select", width: stats.askedWidth, codec }));
  }

  // roomHasH264 asks /api/rooms whether the room lists an H.264 layer;
  // any failure (or PROBE_TIMEOUT_MS without an answer) is a no.
  async function roomHasH264() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
    try {
      const resp = await fetch(W.withToken("/api/rooms"), { cache: "no-store", signal: abort.signal });
      if (!resp.ok) return false;
      const list = (await resp.json()).rooms || [];
      const r = list.find((x) => x.name === room);
      stats.roomH264 = !!(r && Array.isArray(r.layers) && r.layers.some((l) => l.codec === H264));
      return stats.roomH264;
    } catch (e) {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  // probe checks /api/rooms now and then while the page shows JPEG but
  // could decode H.264; the interval starts again at PROBE_MS after every
  // connect.
  let probeMs = PROBE_MS, probeTimer = null;
  function scheduleProbe() {
    clearTimeout(probeTimer);
    probeTimer = setTimeout(probe, probeMs);
    probeMs = Math.min(probeMs * 2, PROBE_MAX_MS);
  }
  async function probe() {
    if (stats.want === JPEG && !stats.h264Off && sock.open && await roomHasH264() && !stats.h264Off) switchCodec(H264);
    scheduleProbe();
  }

  // reselect asks for the layer that fits the canvas now, if that width
  // differs from the one asked for last. A closed socket asks on its next
  // connect instead.
  function reselect() {
    const want = W.wantedWidth(canvas);
    if (want === stats.askedWidth || !sock.open) return;
    stats.askedWidth = want;
    stats.selects++;
    const msg = { type: "select", width: want };
    if (stats.want === H264) msg.codec = H264;
    sock.send(JSON.stringify(msg));
  }

  W.onDisplayChange(canvas, reselect, RESIZE_DEBOUNCE_MS);

  // The timeline under the picture: hidden until the gateway answers with
  // the room's recordings, for good where it keeps none (the page says so:
  // data-recordings, so nothing is asked of such a gateway).
  const recordingsKept = stage.dataset.recordings === "1";
  const timeline = new window.FramecastTimeline.Timeline(timelineEl, {
    spans: (from) => recordingsKept ? window.FramecastTimeline.fetchSpans(room, from) : Promise.resolve(null),
    thumbnail: (ms, width) => W.withToken("/video/" + encodeURIComponent(room) + "/snapshot.jpg", { at: String(ms), width }),
    onSeek: sendSeek,
    onLive: () => { sendLive(); setLinkAt(null); },
    keys: true,
  });
  stats.timeline = timeline.state;

  setInterval(() => {
    stats.fps = rate.perSecond();
    stats.kBps = meter.kBps();
    timeline.setShown(stats.shownMs, stats.mode === "live");
    if ((stats.state === "live" || stats.state === "playback") && Date.now() - stats.lastFrameAt > STALE_MS) setState("offline");
    const lat = stats.latencyMs === null ? "–" : Math.max(0, Math.round(stats.latencyMs)) + " ms";
    const layer = stats.layerWidth ? "layer " + (stats.layer === null ? 0 : stats.layer) + " " +
      stats.layerWidth + "×" + stats.layerHeight : "layer –";
    overlay.textContent = "fps " + stats.fps + " · latency " + lat + " · skipped " + stats.skipped +
      " · " + stats.codec + " · " + layer + " · " + W.formatKBps(stats.kBps);
  }, 250);

  (async () => {
    // Asked even where H.264 is ruled out: roomH264 tells the overlay's
    // skip count how the JPEG layer is numbered.
    if (await roomHasH264() && !stats.h264Off) stats.want = stats.codec = H264;
    sock.connect();
  })();
})();
