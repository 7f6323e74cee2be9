// Admin page: keep the PBX link status current. The page works without this file.
"use strict";
(function () {
  const crm = window.crm || {};
  const _ = (m) => (crm._ ? crm._(m) : m);
  const lang = ((crm.i18n && crm.i18n.lang) || "en").replace("_", "-");
  const num = (n, digits) => new Intl.NumberFormat(lang, {
    minimumFractionDigits: digits || 0, maximumFractionDigits: digits || 0 }).format(n);
  // the reader's time zone and pattern, as the page shows it (web/formatting.py)
  function fmtTime(ts) {
    if (!ts) return _("none yet");
    return crm.formatTime ? crm.formatTime(ts, "datetime_s") : new Date(ts * 1000).toISOString();
  }
  function show(st) {
    const box = document.getElementById("link-status");
    if (!box || !st || !st.state) return;
    const set = (field, text) => {
      const el = box.querySelector('[data-field="' + field + '"]');
      if (el) el.textContent = text;
    };
    const state = box.querySelector('[data-field="state"]');
    if (state) {
      state.textContent = crm.words ? crm.words(st.state) : st.state;
      state.className = "state " + st.state;
    }
    if ("since" in st) set("since", fmtTime(st.since));
    if ("endpoint" in st) set("endpoint", st.endpoint);
    if ("last_event_at" in st) set("last_event_at", fmtTime(st.last_event_at));
    if ("events_per_s" in st) set("events_per_s", num(Number(st.events_per_s || 0), 1));
    if ("events_total" in st) set("events_total", num(st.events_total));
    if ("reconnects" in st) set("reconnects", String(st.reconnects));
    if ("backlog" in st) set("backlog", String(st.backlog));
    if ("backlog_max" in st) set("backlog_max", String(st.backlog_max));
    const flag = box.querySelector('[data-field="backlog_flag"]');
    if (flag && "full_since" in st) {
      flag.hidden = !(st.full_since || st.overloaded);
      flag.textContent = st.overloaded
        ? _("overloaded: the PBX sends more than this process can handle")
        : _("full: reading paused");
    }
    if ("last_error" in st) set("last_error", st.last_error || "—");
  }
  function poll() {
    fetch("/admin/link-status", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null)).then(show).catch(() => {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("link-status")) return;
    if (window.crm && window.crm.on) window.crm.on("link_status", show);
    setInterval(poll, 3000);
  });
})();
