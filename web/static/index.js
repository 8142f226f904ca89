// Opens the room typed into the index form at /video/{room}/.
"use strict";
document.getElementById("open-room").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const room = new FormData(ev.target).get("room");
  if (/^[A-Za-z0-9_]{1,64}$/.test(room)) {
    window.location.href = "/video/" + encodeURIComponent(room) + "/";
  }
});
