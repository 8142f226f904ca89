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

  const stats = { state: "connecting", connects: 0, bytes: 0, controlSent: 0, controlErrors: [], tiles: {} };
  window.framecastGrid = stats;

  const tiles = new Map(); // room -> tile
  let queue = []; // control messages waiting for their turn

  function setState(s) {
    stats.state = s;
    stateEl.textContent = s;
    stateEl.className = "state " + s;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

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
    a.append(canvas, label, info, reason);
    const s = {
      state: "connecting", frames: 0, drawn: 0, fps: 0, lastSeq: null, layer: null,
      width: 0, height: 0, askedWidth: 0, gatewayLayer: null, reason: "",
    };
    stats.tiles[room] = s;
    const t = {
      room, a, canvas, ctx: canvas.getContext("2d"), badge, info, reason, s,
      rate: new W.Rate(), lastFrameAt: 0, lastLive: Date.now(), pending: null, decoding: false,
      subscribed: false, // on the current socket: in its URL, or a subscribe sent
    };
    tiles.set(room, t);
    layout();
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
      for (const t of tiles.values()) if (!t.subscribed) subscribeNow(t); // added while connecting
      reselect(); // tiles of other sizes than the widest
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
    if (m.type === "error") { stats.controlErrors.push(m.reason); return; }
    if (!t) return;
    if (m.type === "refused") {
      t.s.reason = String(m.reason || "refused");
      t.reason.textContent = t.s.reason;
      t.reason.hidden = false;
      setTileState(t, "refused");
    } else if (m.type === "layer") {
      t.s.gatewayLayer = { layer: m.layer, width: m.width, height: m.height, reason: m.reason };
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
    setTileState(t, "live");
    t.pending = new Blob([f.jpeg], { type: "image/jpeg" });
    if (!t.decoding) drawNext(t);
  }

  async function drawNext(t) {
    t.decoding = true;
    while (t.pending) {
      const blob = t.pending;
      t.pending = null;
      try {
        const bmp = await createImageBitmap(blob);
        if (t.canvas.width !== bmp.width || t.canvas.height !== bmp.height) {
          t.canvas.width = bmp.width;
          t.canvas.height = bmp.height;
        }
        t.ctx.drawImage(bmp, 0, 0);
        bmp.close();
        t.s.drawn++;
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

  // subscribeNow adds t's room to the open socket at the tile's size.
  function subscribeNow(t) {
    t.subscribed = true;
    t.s.askedWidth = W.wantedWidth(t.canvas);
    send({ type: "subscribe", room: t.room, width: t.s.askedWidth });
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

  setInterval(() => {
    const now = Date.now();
    for (const t of tiles.values()) {
      t.s.fps = t.rate.perSecond();
      if (t.s.state === "live" && now - t.lastFrameAt > STALE_MS) setTileState(t, "offline");
      const size = t.s.width ? " · " + t.s.width + "×" + t.s.height : "";
      t.info.textContent = "fps " + t.s.fps + size;
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
