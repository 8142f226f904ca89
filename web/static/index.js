// Opens the room typed into the index form at /video/{room}/.
"use strict";
document.getElementById("open-room").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const room = new FormData(ev.target).get("room");
  if (/^[A-Za-z0-9_]{1,64}$/.test(room)) {
    window.location.href = "/video/" + encodeURIComponent(room) + "/";
  }
});

// Keeps the room list and its thumbnails live: the list from /api/rooms
// (every replica's rooms) every 5 s, each live room's thumbnail from
// /video/{room}/snapshot.jpg?width=1 (its smallest layer) every 2 s. A new
// thumbnail replaces the old one only once it has loaded, so nothing
// flickers; a failed load keeps the old. Nothing runs while the tab is
// hidden.
(() => {
  const LIST_MS = 5000, THUMB_MS = 2000;
  const token = new URLSearchParams(window.location.search).get("token");
  const withToken = (u) => token ? u + (u.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : u;
  const main = document.querySelector("main");
  const form = document.getElementById("open-room");

  // width=1: the room's smallest layer (docs/protocol.md, "Layers"), all a
  // thumbnail needs.
  function thumbURL(room) {
    return withToken("/video/" + encodeURIComponent(room) + "/snapshot.jpg?width=1&t=" + Date.now());
  }

  function roomItem(r) {
    const li = document.createElement("li");
    li.className = "room " + (r.live ? "live" : "offline");
    li.dataset.room = r.name;
    const href = "/video/" + encodeURIComponent(r.name) + "/";
    if (r.live) {
      const a = document.createElement("a");
      a.className = "thumb-link";
      a.href = href;
      a.tabIndex = -1;
      const img = document.createElement("img");
      img.className = "thumb";
      img.alt = "";
      img.width = 320;
      img.height = 240;
      img.src = thumbURL(r.name);
      a.appendChild(img);
      li.appendChild(a);
    }
    const link = document.createElement("a");
    link.href = href;
    link.textContent = r.name;
    const state = document.createElement("span");
    state.className = "state " + (r.live ? "live" : "offline");
    state.textContent = r.live ? "live" : "offline";
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = r.viewers + " viewer" + (r.viewers === 1 ? "" : "s");
    li.append(link, state, count);
    return li;
  }

  // Reuses an existing item when nothing it shows changed, so its
  // thumbnail is not reloaded.
  function render(rooms) {
    let list = document.getElementById("rooms");
    const empty = document.getElementById("rooms-empty");
    if (!list) {
      list = document.createElement("ul");
      list.className = "rooms";
      list.id = "rooms";
      main.insertBefore(list, form);
    }
    if (empty) empty.hidden = rooms.length > 0;
    list.hidden = rooms.length === 0;
    const old = new Map();
    for (const li of list.children) old.set(li.dataset.room, li);
    const items = rooms.map((r) => {
      const li = old.get(r.name);
      const count = li && li.querySelector(".count");
      if (li && li.classList.contains(r.live ? "live" : "offline")) {
        count.textContent = r.viewers + " viewer" + (r.viewers === 1 ? "" : "s");
        return li;
      }
      return roomItem(r);
    });
    list.replaceChildren(...items);
  }

  async function refreshList() {
    if (document.hidden) return;
    try {
      const resp = await fetch(withToken("/api/rooms"), { cache: "no-store" });
      if (resp.ok) render((await resp.json()).rooms || []);
    } catch (e) { /* keep the list shown; try again later */ }
  }

  function refreshThumbs() {
    if (document.hidden) return;
    for (const img of document.querySelectorAll("img.thumb")) {
      const li = img.closest("li.room");
      if (!li) continue;
      const next = new Image(320, 240);
      next.className = "thumb";
      next.alt = "";
      next.onload = () => { if (img.isConnected) img.replaceWith(next); };
      next.src = thumbURL(li.dataset.room);
    }
  }

  setInterval(refreshList, LIST_MS);
  setInterval(refreshThumbs, THUMB_MS);
})();
