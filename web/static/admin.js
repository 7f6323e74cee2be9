// Admin page: keep the PBX link status current. The page works without this file.
"use strict";
(function () {
  function fmtTime(ts) {
    if (!ts) return "none yet";
    const d = new Date(ts * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
      p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  function show(st) {
    const box = document.getElementById("link-status");
    if (!box || !st || !st.state) return;
    const set = (field, text) => {
      const el = box.querySelector('[data-field="' + field + '"]');
      if (el) el.textContent = text;
    };
    const state = box.querySelector('[data-field="state"]');
    if (state) { state.textContent = st.state; state.className = "state " + st.state; }
    if ("since" in st) set("since", fmtTime(st.since));
    if ("endpoint" in st) set("endpoint", st.endpoint);
    if ("last_event_at" in st) set("last_event_at", fmtTime(st.last_event_at));
    if ("events_per_s" in st) set("events_per_s", Number(st.events_per_s || 0).toFixed(1));
    if ("events_total" in st) set("events_total", String(st.events_total));
    if ("reconnects" in st) set("reconnects", String(st.reconnects));
    if ("backlog" in st) set("backlog", String(st.backlog));
    if ("backlog_max" in st) set("backlog_max", String(st.backlog_max));
    const flag = box.querySelector('[data-field="backlog_flag"]');
    if (flag && "full_since" in st) {
      flag.hidden = !st.full_since;
      flag.textContent = st.overloaded
        ? "overloaded: the PBX sends more than this process can handle" : "full: reading paused";
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
