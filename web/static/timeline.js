// framecast timeline: recorded footage on a bar whose right edge is now,
// shared by the viewer page (one room's spans, with thumbnails) and the
// camera wall (the union of its rooms' spans). The page says what it
// shows (setShown); the timeline turns clicks, buttons and keys into seek
// and live requests (opts.onSeek, opts.onLive), which the page sends on
// its WebSocket (docs/protocol.md, "Playback").
//
// - Spans come from opts.spans(from) (fetchSpans below: GET
//   /video/{room}/recordings). null means the gateway keeps no recordings
//   (404): the timeline stays hidden for good and its keys do nothing, so
//   a page on such a gateway works as it did before recordings existed.
//   They are asked again every range/120 (5 s to 60 s) and on every zoom.
// - Zoom: ZOOMS, 5 minutes to 4 weeks, with the − and + buttons or the
//   wheel over the bar (a notch, or 50 pixels of a trackpad's scrolling,
//   per step). Now is always at the right edge.
// - Spans closer than a pixel are drawn as one bar; the cursor marks the
//   time being shown (at the right edge, green, while live), which the
//   label beside the buttons spells out (with LIVE while live).
// - Hovering over the bar shows the time there and, where opts.thumbnail
//   is given and the time is inside a span with a JPEG recording, the
//   recorded picture (fetched after THUMB_DEBOUNCE_MS of stillness, one
//   per pixel of the bar, the last THUMB_CACHE kept as blob URLs).
// - Click: seek there. Buttons −30 s, −10 s, +10 s; LIVE. Keys (opts.keys):
//   ← −10 s, → +10 s, L live. A time within LIVE_EDGE_MS of now, or later
//   (the gateway refuses times in the future), means live.
// - Steps count from the time being shown, or from a seek asked within
//   PENDING_MS (advanced by the time since): three quick presses of ←
//   make −30 s, not −10 s three times. Requests within SEEK_DEBOUNCE_MS of
//   each other become one seek (key repeat stays under the gateway's
//   control message rate).
// Loaded after wire.js; defines window.FramecastTimeline.
"use strict";
window.FramecastTimeline = (() => {
  const W = window.FramecastWire, el = W.el;
  const SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;
  const ZOOMS = [5 * MIN, 15 * MIN, HOUR, 6 * HOUR, DAY, 7 * DAY, 28 * DAY];
  const DEFAULT_ZOOM = 2;           // 1 h
  const LIVE_EDGE_MS = 1500;        // this close to now (or later) is live
  const SEEK_DEBOUNCE_MS = 120;     // requests closer than this make one seek
  const PENDING_MS = 2000;          // a seek this recent is what steps count from
  const THUMB_DEBOUNCE_MS = 150, THUMB_CACHE = 120, THUMB_WIDTH = 160;
  const NOTICE_MS = 4000, RENDER_MS = 250, WHEEL_STEP = 50;
  // Tick steps, smallest first: the first that makes at most MAX_TICKS.
  const TICK_STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR,
    6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];
  const MAX_TICKS = 8;

  // parseTime reads an RFC 3339 time as ms since the epoch. Date.parse
  // only promises three fractional digits; Go writes up to nine.
  function parseTime(s) {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(String(s));
    if (!m) return NaN;
    return Date.parse(m[1] + "." + (m[2] || "0").padEnd(3, "0").slice(0, 3) + m[3]);
  }

  // fetchSpans asks the gateway for room's recorded spans from from (ms)
  // to now: [{start, end, codecs}] with times in ms, or null when the
  // gateway keeps no recordings (404). Other failures throw. `to` is left
  // to the gateway (its now): a browser clock ahead of the gateway's would
  // make it a time in the future, which is refused.
  async function fetchSpans(room, from) {
    const url = W.withToken("/video/" + encodeURIComponent(room) + "/recordings", { from: String(Math.floor(from)) });
    const resp = await fetch(url, { cache: "no-store" });
    if (resp.status === 404) return null;
    if (!resp.ok) throw new Error("recordings of " + room + ": HTTP " + resp.status);
    const body = await resp.json();
    return (body.spans || []).map((s) => ({ start: parseTime(s.start), end: parseTime(s.end), codecs: s.codecs || [] }))
      .filter((s) => !isNaN(s.start) && !isNaN(s.end));
  }

  // union merges spans, in any order, into sorted spans that do not
  // overlap; spans less than gapMs apart are joined.
  function union(spans, gapMs = 0) {
    const out = [];
    for (const s of spans.slice().sort((a, b) => a.start - b.start)) {
      const last = out[out.length - 1];
      if (last && s.start - last.end <= gapMs) {
        last.end = Math.max(last.end, s.end);
        for (const c of s.codecs) if (!last.codecs.includes(c)) last.codecs.push(c);
      } else out.push({ start: s.start, end: s.end, codecs: s.codecs.slice() });
    }
    return out;
  }

  const pad = (n, w = 2) => String(n).padStart(w, "0");

  // formatClock is ms as local HH:MM:SS, with tenths when tenths is set.
  function formatClock(ms, tenths) {
    const d = new Date(ms);
    const s = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    return tenths ? s + "." + Math.floor(d.getMilliseconds() / 100) : s;
  }

  // formatTime is ms as a local date and time, the date left out for today.
  function formatTime(ms) {
    const d = new Date(ms), today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    const date = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    return (sameDay ? "" : date + " ") + formatClock(ms, true);
  }

  function formatRange(ms) {
    if (ms < HOUR) return ms / MIN + " min";
    if (ms < DAY) return ms / HOUR + " h";
    if (ms < 7 * DAY) return ms / DAY + " d";
    return ms / (7 * DAY) + " wk";
  }

  // typing reports whether a key event belongs to a form field.
  function typing(ev) {
    const t = ev.target;
    return !!t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  class Timeline {
    // root is an empty element, hidden until the first spans arrive.
    // opts: spans(from) → Promise of spans or null; onSeek(ms); onLive();
    // thumbnail(ms, width) → a URL (optional); keys (bool).
    constructor(root, opts) {
      this.root = root;
      this.opts = opts;
      this.zoom = DEFAULT_ZOOM;
      this.spans = [];
      this.shownMs = null;  // the time being shown (setShown)
      this.live = true;
      this.pending = null;  // {ms (null: live), asked}: the last request
      this.seekTimer = null;
      this.refreshTimer = null;
      this.refreshes = 0;   // tells an older refresh's answer from the newest
      this.thumbs = new Map(); // quantized ms → Promise of a blob URL or null
      this.hoverMs = null;
      // What tests and people can read (the page exposes it).
      this.state = {
        available: null, rangeMs: ZOOMS[this.zoom], spans: 0, seeks: 0, lives: 0,
        thumbsFetched: 0, thumbShownMs: null, notice: "",
      };
      this.build();
      if (opts.keys) document.addEventListener("keydown", (ev) => this.onKey(ev));
      setInterval(() => this.render(), RENDER_MS);
      this.refresh();
    }

    build() {
      const controls = el("div", "tl-controls");
      const button = (cls, text, title, fn) => {
        const b = el("button", "tl-button " + cls, text);
        b.type = "button";
        b.title = title;
        b.addEventListener("click", fn);
        controls.append(b);
        return b;
      };
      button("tl-back30", "−30 s", "back 30 seconds", () => this.step(-30 * SEC));
      button("tl-back10", "−10 s", "back 10 seconds (←)", () => this.step(-10 * SEC));
      button("tl-fwd10", "+10 s", "forward 10 seconds (→)", () => this.step(10 * SEC));
      this.liveButton = button("tl-live", "LIVE", "back to live (L)", () => this.goLive());
      this.timeEl = el("span", "tl-time", "LIVE");
      this.noticeEl = el("span", "tl-notice");
      this.noticeEl.hidden = true;
      const zoom = el("span", "tl-zoom");
      this.rangeEl = el("span", "tl-range", formatRange(ZOOMS[this.zoom]));
      controls.append(this.timeEl, this.noticeEl, zoom);
      const zoomButton = (text, title, by) => {
        const b = el("button", "tl-button", text);
        b.type = "button";
        b.title = title;
        b.addEventListener("click", () => this.setZoom(this.zoom + by));
        return b;
      };
      zoom.append(zoomButton("−", "zoom out", 1), this.rangeEl, zoomButton("+", "zoom in", -1));

      this.bar = el("div", "tl-bar");
      this.spansEl = el("div", "tl-spans");
      this.cursor = el("div", "tl-cursor");
      this.hover = el("div", "tl-hover");
      this.hover.hidden = true;
      this.thumbImg = el("img", "tl-thumb");
      this.thumbImg.alt = "";
      this.thumbImg.hidden = true;
      this.hoverTime = el("span", "tl-hover-time");
      this.hover.append(this.thumbImg, this.hoverTime);
      this.bar.append(this.spansEl, this.cursor, this.hover);
      this.ticks = el("div", "tl-ticks");
      this.root.append(controls, this.bar, this.ticks);

      this.bar.addEventListener("click", (ev) => this.request(this.timeAt(ev.clientX)));
      this.bar.addEventListener("mousemove", (ev) => this.onHover(ev.clientX));
      this.bar.addEventListener("mouseleave", () => { this.hoverMs = null; this.hover.hidden = true; });
      // A wheel's notch is one zoom step; a trackpad's stream of small
      // deltas adds up to steps of WHEEL_STEP pixels.
      let wheel = 0;
      this.bar.addEventListener("wheel", (ev) => {
        ev.preventDefault(); // the page would scroll
        const dy = ev.deltaMode === WheelEvent.DOM_DELTA_PIXEL ? ev.deltaY : ev.deltaY * WHEEL_STEP;
        if (Math.sign(dy) !== Math.sign(wheel)) wheel = 0; // turned the other way
        wheel += dy;
        if (Math.abs(wheel) < WHEEL_STEP) return;
        this.setZoom(this.zoom + Math.sign(wheel));
        wheel = 0;
      }, { passive: false });
    }

    get rangeMs() { return ZOOMS[this.zoom]; }

    // timeAt is the time under the page's x coordinate on the bar.
    timeAt(clientX) {
      const r = this.bar.getBoundingClientRect();
      const f = Math.min(1, Math.max(0, (clientX - r.left) / (r.width || 1)));
      return Date.now() - this.rangeMs * (1 - f);
    }

    // --- spans ---

    async refresh() {
      clearTimeout(this.refreshTimer);
      const n = ++this.refreshes;
      let spans;
      try {
        spans = await this.opts.spans(Date.now() - this.rangeMs);
      } catch (e) {
        spans = undefined; // keep what is drawn; ask again later
      }
      if (n !== this.refreshes) return; // a zoom asked again meanwhile
      if (spans === null) { this.unavailable(); return; }
      if (spans !== undefined) {
        this.spans = spans;
        this.state.spans = spans.length;
        if (!this.state.available) {
          this.state.available = true;
          this.root.hidden = false;
        }
        this.render();
      }
      const every = Math.min(60 * SEC, Math.max(5 * SEC, this.rangeMs / 120));
      this.refreshTimer = setTimeout(() => this.refresh(), every);
    }

    // unavailable hides the timeline for good: the gateway keeps no recordings.
    unavailable() {
      this.state.available = false;
      this.root.hidden = true;
      clearTimeout(this.refreshTimer);
    }

    setZoom(i) {
      i = Math.min(ZOOMS.length - 1, Math.max(0, i));
      if (i === this.zoom) return;
      this.zoom = i;
      this.state.rangeMs = this.rangeMs;
      this.rangeEl.textContent = formatRange(this.rangeMs);
      this.render();
      this.refresh();
    }

    // inSpan reports whether t falls in a span (one recording codec, if given).
    inSpan(t, codec) {
      return this.spans.some((s) => s.start <= t && t <= s.end && (!codec || s.codecs.includes(codec)));
    }

    // --- what is shown, and requests ---

    // setShown tells the timeline the time being shown (ms, or null when
    // nothing is) and whether it is live.
    setShown(ms, live) {
      const moved = live !== this.live || (ms !== null && Math.abs(ms - (this.shownMs || 0)) > SEC);
      this.shownMs = ms;
      this.live = live;
      if (moved) this.render(); // a seek or live shows at once, not at the next tick
    }

    // base is the time steps count from: a recent request's (advanced by
    // the time since, as playback runs in real time), else what is shown.
    base() {
      const now = Date.now();
      if (this.pending && now - this.pending.asked < PENDING_MS) {
        return this.pending.ms === null ? now : this.pending.ms + (now - this.pending.asked);
      }
      return this.live || this.shownMs === null ? now : this.shownMs;
    }

    step(deltaMs) {
      if (this.state.available) this.request(this.base() + deltaMs);
    }

    // request asks to show time ms: a seek, or live when ms is at or past
    // now's edge.
    request(ms) {
      const now = Date.now();
      if (ms >= now - LIVE_EDGE_MS) { this.goLive(); return; }
      this.pending = { ms, asked: now };
      this.state.seeks++;
      clearTimeout(this.seekTimer);
      this.seekTimer = setTimeout(() => this.opts.onSeek(Math.round(ms)), SEEK_DEBOUNCE_MS);
    }

    goLive() {
      clearTimeout(this.seekTimer);
      this.pending = { ms: null, asked: Date.now() };
      this.state.lives++;
      this.opts.onLive();
    }

    // cancel forgets the last request (the gateway refused it).
    cancel() { this.pending = null; }

    // notice shows text under the buttons for NOTICE_MS.
    notice(text) {
      this.state.notice = text;
      this.noticeEl.textContent = text;
      this.noticeEl.hidden = false;
      clearTimeout(this.noticeTimer);
      this.noticeTimer = setTimeout(() => {
        this.noticeEl.hidden = true;
        this.state.notice = "";
      }, NOTICE_MS);
    }

    onKey(ev) {
      if (!this.state.available || typing(ev) || ev.ctrlKey || ev.altKey || ev.metaKey) return;
      if (ev.key === "ArrowLeft") this.step(-10 * SEC);
      else if (ev.key === "ArrowRight") this.step(10 * SEC);
      else if (ev.key === "l" || ev.key === "L") this.goLive();
      else return;
      ev.preventDefault();
    }

    // --- hover and thumbnails ---

    onHover(clientX) {
      const t = this.timeAt(clientX), now = Date.now();
      const r = this.bar.getBoundingClientRect();
      this.hoverX = clientX - r.left;
      this.hover.hidden = false;
      this.hoverTime.textContent = t >= now - LIVE_EDGE_MS ? "LIVE" : formatTime(t);
      if (!this.opts.thumbnail || !this.inSpan(t, "jpeg")) {
        this.hoverMs = null;
        this.thumbImg.hidden = true;
        this.placeHover();
        return;
      }
      this.placeHover();
      // One thumbnail per pixel of the bar (and at most one a second),
      // at whole milliseconds (what the gateway reads).
      const q = Math.max(SEC, Math.round(this.rangeMs / (r.width || 1)));
      const key = Math.floor(t / q) * q;
      if (key === this.hoverMs) return;
      this.hoverMs = key;
      clearTimeout(this.thumbTimer);
      this.thumbTimer = setTimeout(() => this.showThumb(key), this.thumbs.has(key) ? 0 : THUMB_DEBOUNCE_MS);
    }

    // placeHover centres the hover box over the pointer, kept inside the
    // bar: a box past the page's edge would bring up a scrollbar, which
    // moves the bar from under the pointer.
    placeHover() {
      const half = this.hover.offsetWidth / 2, width = this.bar.clientWidth;
      this.hover.style.left = Math.min(width - half, Math.max(half, this.hoverX)) + "px";
    }

    async showThumb(key) {
      const url = await this.thumb(key);
      if (key !== this.hoverMs) return; // the pointer moved on
      this.thumbImg.hidden = !url;
      if (url) {
        this.thumbImg.src = url;
        this.state.thumbShownMs = key;
      }
      this.placeHover(); // the box is as wide as the picture now
    }

    // thumb returns a blob URL of the picture recorded at key, or null;
    // fetched once, the last THUMB_CACHE kept (oldest use dropped first).
    thumb(key) {
      let p = this.thumbs.get(key);
      if (p) {
        this.thumbs.delete(key); // move to the newest end
        this.thumbs.set(key, p);
        return p;
      }
      this.state.thumbsFetched++;
      const width = Math.round(THUMB_WIDTH * (window.devicePixelRatio || 1));
      p = fetch(this.opts.thumbnail(key, width), { cache: "no-store" })
        .then((resp) => (resp.ok ? resp.blob() : null))
        .then((blob) => (blob ? URL.createObjectURL(blob) : null), () => null);
      this.thumbs.set(key, p);
      if (this.thumbs.size > THUMB_CACHE) {
        const [oldKey, old] = this.thumbs.entries().next().value;
        this.thumbs.delete(oldKey);
        old.then((u) => u && URL.revokeObjectURL(u));
      }
      return p;
    }

    // --- drawing ---

    render() {
      if (!this.state.available) return;
      const now = Date.now(), range = this.rangeMs, from = now - range;
      const width = this.bar.clientWidth || 1;
      const pct = (t) => Math.min(100, Math.max(0, ((t - from) / range) * 100)) + "%";
      const bars = union(this.spans.filter((s) => s.end >= from), range / width);
      while (this.spansEl.children.length > bars.length) this.spansEl.lastChild.remove();
      while (this.spansEl.children.length < bars.length) this.spansEl.append(el("div", "tl-span"));
      bars.forEach((s, i) => {
        const e = this.spansEl.children[i];
        e.style.left = pct(s.start);
        // At least a pixel wide, so a short span shows.
        e.style.width = "max(1px, calc(" + pct(s.end) + " - " + pct(s.start) + "))";
      });
      const live = this.live || this.shownMs === null;
      this.cursor.style.left = live ? "100%" : pct(this.shownMs);
      this.cursor.classList.toggle("live", live);
      this.liveButton.classList.toggle("on", live);
      this.timeEl.textContent = this.shownMs === null ? "LIVE" : (live ? "LIVE · " : "") + formatTime(this.shownMs);
      this.renderTicks(from, range);
    }

    renderTicks(from, range) {
      const step = TICK_STEPS.find((s) => range / s <= MAX_TICKS) || TICK_STEPS[TICK_STEPS.length - 1];
      // Align to the step in local time (getTimezoneOffset is in minutes, west positive).
      const tz = new Date(from).getTimezoneOffset() * MIN;
      const times = [];
      for (let t = Math.ceil((from + tz) / step) * step - tz; t <= from + range; t += step) times.push(t);
      while (this.ticks.children.length > times.length) this.ticks.lastChild.remove();
      while (this.ticks.children.length < times.length) this.ticks.append(el("span", "tl-tick"));
      times.forEach((t, i) => {
        const e = this.ticks.children[i], d = new Date(t);
        e.style.left = ((t - from) / range) * 100 + "%";
        e.textContent = step >= DAY ? pad(d.getMonth() + 1) + "-" + pad(d.getDate()) : pad(d.getHours()) + ":" + pad(d.getMinutes());
      });
    }
  }

  return { Timeline, fetchSpans, union, parseTime, formatTime, formatClock, LIVE_EDGE_MS };
})();
