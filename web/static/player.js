// Recording player: draws the waveform (from the signed waveform link) and the play
// position on a canvas, keeps a progress bar and time in step, and seeks on click.
// Without this file the plain <audio controls> element still plays and seeks.
"use strict";
(function () {
  if (window.crmPlayerLoaded) return;
  window.crmPlayerLoaded = true;

  function clock(s) {
    if (!isFinite(s) || s < 0) s = 0;
    const m = Math.floor(s / 60), r = Math.floor(s % 60);
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  function setup(box) {
    const audio = box.querySelector("audio");
    const canvas = box.querySelector("canvas.player-wave");
    const bar = box.querySelector("progress.player-progress");
    const time = box.querySelector(".player-time");
    const total = box.querySelector(".player-duration");
    if (!audio || box.dataset.ready) return;
    box.dataset.ready = "1";
    let peaks = [];
    let duration = parseFloat(bar ? bar.max : "0") || 0;

    function length() {
      return isFinite(audio.duration) && audio.duration > 0 ? audio.duration : duration;
    }

    function draw() {
      if (!canvas) return;
      const ctx = canvas.getContext("2d");
      const w = canvas.width, h = canvas.height, mid = h / 2;
      ctx.clearRect(0, 0, w, h);
      const done = length() ? audio.currentTime / length() : 0;
      const n = peaks.length || 1;
      const step = w / n;
      for (let i = 0; i < n; i++) {
        const p = peaks.length ? Math.max(0.02, peaks[i]) : 0.04;
        const x = i * step;
        ctx.fillStyle = x / w <= done ? "#2458d6" : "#c7d2e6";
        const half = Math.max(1, p * (mid - 2));
        ctx.fillRect(x, mid - half, Math.max(1, step - 1), half * 2);
      }
      ctx.fillStyle = "#101828";
      ctx.fillRect(Math.min(w - 2, done * w), 0, 2, h);
    }

    const _ = (m, v) => (window.crm && window.crm._ ? window.crm._(m, v) : m);

    function update() {
      if (bar) { bar.max = length() || 1; bar.value = audio.currentTime; }
      if (time) time.textContent = clock(audio.currentTime);
      if (canvas) {
        // the slider's value, read out by screen readers as "0:35 of 1:20"
        canvas.setAttribute("aria-valuemax", String(Math.round(length())));
        canvas.setAttribute("aria-valuenow", String(Math.round(audio.currentTime)));
        canvas.setAttribute("aria-valuetext", _("%(position)s of %(duration)s",
          { position: clock(audio.currentTime), duration: clock(length()) }));
      }
      draw();
    }

    function seek(to) {
      if (!length()) return;
      audio.currentTime = Math.max(0, Math.min(length(), to));
      update();
    }

    if (canvas) {
      canvas.style.width = "100%";
      canvas.style.height = "56px";
      canvas.style.cursor = "pointer";
      canvas.style.display = "block";
      canvas.addEventListener("click", function (ev) {
        const rect = canvas.getBoundingClientRect();
        const at = (ev.clientX - rect.left) / rect.width;
        seek(Math.max(0, Math.min(1, at)) * length());
      });
      // the keyboard: as a native slider does (arrows 5 s, Page Up/Down 30 s, Home/End)
      canvas.addEventListener("keydown", function (ev) {
        const now = audio.currentTime;
        const moves = {
          ArrowRight: now + 5, ArrowUp: now + 5, ArrowLeft: now - 5, ArrowDown: now - 5,
          PageUp: now + 30, PageDown: now - 30, Home: 0, End: length(),
        };
        if (!(ev.key in moves)) return;
        ev.preventDefault();
        seek(moves[ev.key]);
      });
      fetch(canvas.dataset.waveform, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then(function (data) {
          if (data && Array.isArray(data.peaks)) peaks = data.peaks;
          if (data && data.duration) duration = data.duration;
          update();
        })
        .catch(function () { update(); });
    }
    if (bar) bar.style.width = "100%";
    audio.style.width = "100%";
    audio.addEventListener("timeupdate", update);
    audio.addEventListener("seeked", update);
    audio.addEventListener("loadedmetadata", function () {
      if (total && isFinite(audio.duration)) total.textContent = clock(audio.duration);
      update();
    });
    audio.addEventListener("error", function () {
      box.dataset.status = "error";
      const p = document.createElement("p");
      p.className = "alert error player-error";
      p.textContent = _("This recording could not be loaded (no access, or the link expired: reload the page).");
      box.appendChild(p);
    });
    update();
  }

  function all() { document.querySelectorAll(".player").forEach(setup); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", all);
  else all();
  window.crm = window.crm || {};
  window.crm.setupPlayers = all;
})();
