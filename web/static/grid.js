// framecast camera wall (/grid/): a tile per room, all rooms over ONE
// WebSocket to /ws/multi/ (docs/protocol.md, "Multi-room connections").
//
// - Rooms: those of ?rooms=a,b,c (data-rooms), or every live room of
//   /api/rooms, refreshed every LIST_MS; a room not live for DROP_MS loses
//   its tile.
// - Each tile asks for the smallest layer that fills it: the width at which
//   its canvas shows the picture × devicePixelRatio. The socket opens with
//   ?rooms=…&width=… for the tiles there are; later rooms are added with
//   "subscribe", removed with "unsubscribe", and a resize sends "select"
//   per tile whose wanted width changed. Control messages leave at most
//   CONTROL_PER_S a second (the gateway closes a connection that sends more
//   than 20 a second), the newest per room and type winning.
// - Every frame names its room in its layer block and goes to that room's
//   tile, latest frame wins per tile. Tiles show live / offline (an offline
//   event, or no frame for STALE_MS) / refused (the gateway's reason), fps
//   and the layer's size. A tile links to the room's viewer page.
// - One clock for every tile (timeline.js, above the tiles): the union of
//   the rooms' recorded spans, −30 s/−10 s/+10 s/LIVE, a click on the bar,
//   keys ← → L. A time chosen is one {"type":"seek","at":"<ms>"} without a
//   room: the gateway plays every room from that time on one clock, so the
//   tiles play in step; LIVE is one {"type":"live"}. The page keeps the
//   clock itself (the time asked, from when it asked), for the timeline's
//   cursor and for the rooms that join later (seeked to the clock's time
//   as they subscribe) and after a reconnect. A tile playing a recording
//   shows the capture time of its picture; one whose room has no
//   recording then shows the gateway's error until the next seek or live.
//   Where the gateway keeps no recordings the clock stays hidden.
// - Reconnects with backoff like the viewer page; pauses in hidden tabs.
// - window.framecastGrid exposes the counters, for people and for tests.
"use strict";
(() => {
  const W = window.FramecastWire;
  const LIST_MS = 3000, DROP_MS = 30000, STALE_MS = 3000, RESIZE_DEBOUNCE_MS = 250, CONTROL_PER_S = 10;
  const grid = document.getElementById("grid");
  const empty = document.getElementById("grid-empty");
  const stateEl = document.getElementById("state");
  const allRooms = grid.dataset.all === "1";

  // clock: the wall's time ({atMs, wall}: atMs was asked at wall, both
  // ms), or null while live.
  const stats = {
    state: "connecting", connects: 0, bytes: 0, controlSent: 0, controlErrors: [], tiles: {},
    clock: null, timeline: null,
  };
  window.framecastGrid = stats;

  const tiles = new Map(); // room -> tile
  let queue = []; // control messages waiting for their turn

  function setState(s) {
    stats.state = s;
    stateEl.textContent = s;
    stateEl.className = "state " + s;
  }

  const el = W.el;

  // --- tiles ---

  function addTile(room) {
    const a = el("a", "tile connecting");
    a.href = W.withToken("/video/" + encodeURIComponent(room) + "/");
    a.dataset.room = room;
    const canvas = el("canvas");
    canvas.width = 320;
    canvas.height = 180;
    const label = el("span", "tile-label");
    const badge = el("span", "state connecting", "connecting");
    label.append(el("span", "tile-name", room), badge);
    const info = el("span", "tile-info", "fps 0");
    const reason = el("span", "tile-reason");
    reason.hidden = true;
    const time = el("span", "tile-time");
    time.hidden = true;
    a.append(canvas, label, info, reason, time);
    // mode: "live" or "playback"; shownMs: capture time of the picture
    // drawn; playbackMs: the last `playback` message's time; error: the
    // gateway's answer to a seek or live of this room that failed.
    const s = {
      state: "connecting", frames: 0, drawn: 0, fps: 0, lastSeq: null, layer: null,
      width: 0, height: 0, askedWidth: 0, gatewayLayer: null, reason: "",
      mode: "live", shownMs: null, playbackMs: null, liveReason: "", error: "",
    };
    stats.tiles[room] = s;
    const t = {
      room, a, canvas, ctx: canvas.getContext("2d"), badge, info, reason, time, s,
      rate: new W.Rate(), lastFrameAt: 0, lastLive: Date.now(), pending: null, decoding: false,
      epoch: 0, // counts the tile's stream changes: a picture of an older stream is not drawn
      subscribed: false, // on the current socket: in its URL, or a subscribe sent
    };
    tiles.set(room, t);
    layout();
    tilesChanged();
    return t;
  }

  function removeTile(t) {
    tiles.delete(t.room);
    delete stats.tiles[t.room];
    queue = queue.filter((m) => m.room !== t.room);
    t.a.remove();
    layout();
  }

  function setTileState(t, state) {
    if (t.s.state === state) return;
    t.s.state = state;
    t.a.className = "tile " + state;
    t.badge.className = "state " + state;
    t.badge.textContent = state;
  }

  // layout orders the tiles by room and sets the column count so that
  // they fill the page: about as many columns as rows.
  function layout() {
    const list = [...tiles.values()].sort((x, y) => (x.room < y.room ? -1 : x.room > y.room ? 1 : 0));
    if (list.some((t, i) => grid.children[i + 1] !== t.a)) grid.append(...list.map((t) => t.a));
    grid.style.setProperty("--cols", String(Math.max(1, Math.ceil(Math.sqrt(list.length)))));
    if (empty) empty.hidden = list.length > 0 || !allRooms;
  }

  // --- the socket ---

  // url is the socket's URL for the tiles there are, which it subscribes.
  function url() {
    queue = [];
    const list = [...tiles.values()];
    const width = list.reduce((w, t) => Math.max(w, W.wantedWidth(t.canvas)), 0);
    for (const t of list) {
      t.subscribed = true;
      t.s.askedWidth = width;
      t.s.reason = "";
      t.reason.hidden = true;
      setTileState(t, "connecting");
    }
    return W.socketURL("/ws/multi/", { rooms: list.map((t) => t.room).join(","), width: list.length ? width : "" });
  }

  const sock = new W.ReconnectingSocket({
    url, onFrame, onControl, onState: setState,
    onOpen: () => {
      stats.connects++;
      setState("live");
      for (const t of tiles.values()) {
        setTileMode(t, "live"); // a new connection's rooms are live
        if (!t.subscribed) subscribeNow(t); // added while connecting
      }
      reselect(); // tiles of other sizes than the widest
      if (stats.clock) send({ type: "seek", at: String(clockNow()) }); // back to the wall's time
    },
    onClose: () => {
      queue = [];
      for (const t of tiles.values()) t.subscribed = false;
    },
  });

  function open() { return sock.open; }

  // send queues a control message; a queued message of the same type for
  // the same room is replaced (only the newest choice matters).
  function send(m) {
    if (!open()) return; // the next connect's URL carries the state
    queue = queue.filter((q) => !(q.type === m.type && q.room === m.room));
    if (m.type === "unsubscribe") queue = queue.filter((q) => q.room !== m.room);
    queue.push(m);
  }

  setInterval(() => {
    if (queue.length && open()) {
      sock.send(JSON.stringify(queue.shift()));
      stats.controlSent++;
    }
  }, 1000 / CONTROL_PER_S);

  function onControl(text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return; }
    const t = m.room !== undefined ? tiles.get(m.room) : null;
    if (m.type === "error") {
      stats.controlErrors.push(m.reason);
      if (t) showError(t, String(m.reason)); // a seek or live of this room could not be done
      return;
    }
    if (!t) return;
    if (m.type === "refused") {
      t.s.reason = String(m.reason || "refused");
      showReason(t, t.s.reason);
      setTileState(t, "refused");
    } else if (m.type === "layer") {
      t.s.gatewayLayer = { layer: m.layer, width: m.width, height: m.height, reason: m.reason };
    } else if (m.type === "playback") {
      setTileMode(t, "playback");
      t.s.playbackMs = Number(m.ms);
    } else if (m.type === "live") {
      t.s.liveReason = m.reason || "";
      setTileMode(t, "live");
      // Every recording ran out (or failed): the wall is live again.
      if (stats.clock && m.reason !== "asked" && ![...tiles.values()].some((x) => x.s.mode === "playback")) stats.clock = null;
    }
  }

  // showReason shows text across tile t (a refusal, an error); "" hides it.
  function showReason(t, text) {
    t.reason.textContent = text;
    t.reason.hidden = !text;
  }

  function showError(t, text) {
    t.s.error = text;
    if (t.s.state !== "refused") showReason(t, text);
  }

  // setTileMode moves tile t to another stream (its recording's, or live):
  // a picture of the old one still being decoded is not drawn.
  function setTileMode(t, mode) {
    if (t.s.mode !== mode) {
      t.s.mode = mode;
      t.epoch++;
      t.pending = null;
      t.s.lastSeq = null;
      if (t.s.state === "live" || t.s.state === "playback") setTileState(t, mode);
    }
    t.time.hidden = mode !== "playback";
  }

  // clearErrors hides every tile's error: a new seek or live asks again.
  function clearErrors() {
    for (const t of tiles.values()) {
      if (!t.s.error) continue;
      t.s.error = "";
      if (t.s.state !== "refused") showReason(t, "");
    }
  }

  function onFrame(buf) {
    stats.bytes += buf.byteLength;
    const f = W.parse(buf);
    if (!f || f.room === null) return;
    const t = tiles.get(f.room);
    if (!t || t.s.state === "refused") return;
    if (f.kind === W.KIND_OFFLINE) { setTileState(t, "offline"); return; }
    if (f.kind !== W.KIND_JPEG) return; // the grid never asks for H.264
    t.s.frames++;
    t.s.lastSeq = f.seq;
    t.lastFrameAt = Date.now();
    t.s.layer = f.layer;
    t.s.width = f.width;
    t.s.height = f.height;
    setTileState(t, t.s.mode);
    t.pending = { blob: new Blob([f.jpeg], { type: "image/jpeg" }), capturedMs: f.capturedMs, epoch: t.epoch };
    if (!t.decoding) drawNext(t);
  }

  async function drawNext(t) {
    t.decoding = true;
    while (t.pending) {
      const p = t.pending;
      t.pending = null;
      try {
        const bmp = await createImageBitmap(p.blob);
        if (p.epoch !== t.epoch) { bmp.close(); continue; }
        if (t.canvas.width !== bmp.width || t.canvas.height !== bmp.height) {
          t.canvas.width = bmp.width;
          t.canvas.height = bmp.height;
        }
        t.ctx.drawImage(bmp, 0, 0);
        bmp.close();
        t.s.drawn++;
        t.s.shownMs = p.capturedMs;
        t.rate.add();
      } catch (e) { /* a bad JPEG: the next one replaces it */ }
    }
    t.decoding = false;
  }

  // reselect asks, per tile, for the layer that fills it now, if that
  // width differs from the one asked for last.
  function reselect() {
    if (!open()) return;
    for (const t of tiles.values()) {
      if (t.s.state === "refused") continue;
      const want = W.wantedWidth(t.canvas);
      if (want === t.s.askedWidth) continue;
      t.s.askedWidth = want;
      send({ type: "select", room: t.room, width: want });
    }
  }

  W.onDisplayChange(grid, reselect, RESIZE_DEBOUNCE_MS);

  // --- the room list ---

  // subscribeNow adds t's room to the open socket at the tile's size,
  // at the wall's time if it plays recordings.
  function subscribeNow(t) {
    t.subscribed = true;
    t.s.askedWidth = W.wantedWidth(t.canvas);
    send({ type: "subscribe", room: t.room, width: t.s.askedWidth });
    if (stats.clock) send({ type: "seek", room: t.room, at: String(clockNow()) });
  }

  function subscribe(room) {
    const t = addTile(room);
    // Ask after layout, at the size the tile gets among the others. A
    // socket that is not open yet subscribes the tile when it opens.
    requestAnimationFrame(() => {
      if (tiles.get(room) === t && !t.subscribed && open()) subscribeNow(t);
    });
  }

  async function refreshList() {
    if (document.hidden) return;
    let list;
    try {
      const resp = await fetch(W.withToken("/api/rooms"), { cache: "no-store" });
      if (!resp.ok) return;
      list = (await resp.json()).rooms || [];
    } catch (e) { return; } // keep the tiles; try again later
    const now = Date.now();
    for (const r of list) {
      if (!r.live) continue;
      const t = tiles.get(r.name);
      if (t) t.lastLive = now;
      else subscribe(r.name);
    }
    for (const t of [...tiles.values()]) {
      if (now - t.lastLive > DROP_MS && t.s.state !== "live") {
        removeTile(t);
        send({ type: "unsubscribe", room: t.room });
      }
    }
  }

  // --- the shared clock ---

  // clockNow is the wall's time now: the time asked, run on since.
  function clockNow() {
    const c = stats.clock;
    return c ? Math.round(c.atMs + (Date.now() - c.wall)) : Date.now();
  }

  // spansOfTiles is the union of every tile's room's recorded spans, or
  // null when the gateway keeps no recordings. A 404 means that (the rooms
  // are valid names), so the first room is asked alone: a gateway without
  // recordings answers one request, not one per tile.
  async function spansOfTiles(from) {
    if (grid.dataset.recordings !== "1") return null; // the gateway keeps none: nothing to ask
    const TL = window.FramecastTimeline;
    const rooms = [...tiles.keys()];
    let first; // the first room whose recordings can be read (a token may not grant some)
    while (rooms.length && first === undefined) {
      first = await TL.fetchSpans(rooms.shift(), from).catch(() => undefined);
    }
    if (first === undefined) throw new Error("no room's recordings could be read yet");
    if (first === null) return null;
    const rest = await Promise.all(rooms.map((r) => TL.fetchSpans(r, from).catch(() => [])));
    return TL.union(first.concat(...rest.map((s) => s || [])));
  }

  // tilesChanged asks for the spans again soon: the rooms differ.
  let spansTimer = null;
  function tilesChanged() {
    clearTimeout(spansTimer);
    spansTimer = setTimeout(() => { if (timeline.state.available !== false) timeline.refresh(); }, 300);
  }

  const timeline = new window.FramecastTimeline.Timeline(document.getElementById("clock"), {
    spans: spansOfTiles,
    // One seek without a room: every room from that time, on one clock.
    onSeek: (ms) => {
      stats.clock = { atMs: ms, wall: Date.now() };
      clearErrors();
      send({ type: "seek", at: String(ms) });
    },
    onLive: () => {
      stats.clock = null;
      clearErrors();
      send({ type: "live" });
    },
    keys: true,
  });
  stats.timeline = timeline.state;

  setInterval(() => {
    const now = Date.now();
    timeline.setShown(stats.clock ? clockNow() : null, !stats.clock);
    for (const t of tiles.values()) {
      t.s.fps = t.rate.perSecond();
      if ((t.s.state === "live" || t.s.state === "playback") && now - t.lastFrameAt > STALE_MS) setTileState(t, "offline");
      const size = t.s.width ? " · " + t.s.width + "×" + t.s.height : "";
      t.info.textContent = "fps " + t.s.fps + size;
      if (t.s.mode === "playback" && t.s.shownMs !== null) t.time.textContent = window.FramecastTimeline.formatTime(t.s.shownMs);
    }
  }, 250);

  if (allRooms) {
    // The first list decides the socket's rooms; later ones subscribe.
    refreshList().finally(() => {
      sock.connect();
      setInterval(refreshList, LIST_MS);
    });
  } else {
    for (const room of (grid.dataset.rooms || "").split(",")) if (room) addTile(room);
    sock.connect();
  }
})();
