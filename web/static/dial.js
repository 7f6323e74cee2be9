// Click-to-call: every a.dial (rendered by the `dial` filter) becomes a button that
// POSTs /dial once per click and shows the call's progress live. Without this file the
// links stay plain tel: links.
"use strict";
(function () {
  // The reader's language (app.js reads the page's catalog strings); English without it.
  const _ = (m, v) => (window.crm && window.crm._ ? window.crm._(m, v) : m);
  const STATES = {
    ringing_you: () => _("Ringing your phone…"),
    dialling: (n) => _("Dialling %(number)s", { number: n }),
    connected: (n) => _("Connected to %(number)s", { number: n }),
    ended: () => _("Call ended"),
    failed: (n, reason) => _("Call failed: %(reason)s", { reason: reason }),
  };
  const toasts = {};   // originate_id -> toast element
  const early = {};    // progress that arrived before the POST's answer

  function container() {
    let box = document.getElementById("pops");
    if (!box) {
      box = document.createElement("div");
      box.id = "pops";
      box.className = "pops";
      box.setAttribute("aria-live", "polite");
      document.body.appendChild(box);
    }
    return box;
  }

  function toast(title) {
    const el = document.createElement("div");
    el.className = "pop dial-toast";
    el.setAttribute("role", "status");
    const t = document.createElement("div");
    t.className = "pop-title";
    t.textContent = title;
    const s = document.createElement("div");
    s.className = "pop-sub dial-state";
    el.append(t, s);
    const close = document.createElement("button");
    close.type = "button";
    close.className = "pop-close dial-close";
    close.setAttribute("aria-label", _("Close"));
    close.textContent = "×";
    close.addEventListener("click", () => el.remove());
    el.appendChild(close);
    container().prepend(el);
    return el;
  }

  function show(el, state, reason, number) {
    el.dataset.state = state;
    const phrases = (window.crm && window.crm.i18n && window.crm.i18n.phrases) || {};
    if (reason && phrases[reason]) reason = phrases[reason];
    const words = STATES[state];
    const text = words ? words(number || "", reason || _("unknown reason")) : state;
    el.querySelector(".dial-state").textContent = text;
    if (state === "ended" || state === "failed") {
      setTimeout(() => el.remove(), state === "failed" ? 15000 : 6000);
    }
  }

  function key() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  async function dial(link) {
    if (link.dataset.busy === "1") return;  // in flight: a double click sends nothing
    link.dataset.busy = "1";
    link.setAttribute("aria-disabled", "true");
    link.classList.add("busy");
    const number = link.dataset.dial;
    const shown = link.textContent.trim() || number;
    const el = toast(_("Calling %(number)s", { number: shown }));
    el.dataset.number = shown;
    show(el, "ringing_you", null, shown);
    try {
      const resp = await fetch("/dial", {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "Accept": "application/json",
          "X-CSRF-Token": window.crm && window.crm.csrf ? window.crm.csrf() : "",
        },
        body: JSON.stringify({ number: number, request_key: key() }),
      });
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      if (!resp.ok) {
        const msg = body && body.error ? body.error.message
          : _("the server said %(status)s", { status: resp.status });
        show(el, "failed", msg, shown);
        return;
      }
      el.dataset.originate = body.originate_id;
      toasts[body.originate_id] = el;
      const later = early[body.originate_id];
      delete early[body.originate_id];
      show(el, body.state, body.reason, shown);
      if (later) show(el, later.state, later.reason, shown);
    } catch (e) {
      show(el, "failed", _("the CRM could not be reached"), shown);
    } finally {
      setTimeout(() => {
        link.dataset.busy = "";
        link.removeAttribute("aria-disabled");
        link.classList.remove("busy");
      }, 1500);
    }
  }

  function onProgress(data) {
    if (!data || !data.originate_id) return;
    const el = toasts[data.originate_id];
    if (!el) { early[data.originate_id] = data; return; }
    const order = ["ringing_you", "dialling", "connected", "ended"];
    const now = order.indexOf(el.dataset.state);
    const next = order.indexOf(data.state);
    if (data.state !== "failed" && next >= 0 && now > next) return;  // never go back
    const shown = el.dataset.number || "";
    show(el, data.state, data.reason, shown);
  }

  document.addEventListener("click", function (ev) {
    const link = ev.target.closest && ev.target.closest("a.dial[data-dial]");
    if (!link || !document.body.dataset.user) return;
    if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    dial(link);
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (window.crm && window.crm.on) window.crm.on("click_progress", onProgress);
    for (const b of document.querySelectorAll("button.dial-register")) {
      if (!navigator.registerProtocolHandler) continue;
      b.hidden = false;
      b.addEventListener("click", function () {
        navigator.registerProtocolHandler("tel", location.origin + "/dial?number=%s");
      });
    }
  });
  window.crm = window.crm || {};
  window.crm.dial = dial;
})();
