// Switchboard CRM: live updates over SSE. Pages work without this file.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  window.crm = window.crm || {};
  window.crm.csrf = csrf;
  window.crm.handlers = window.crm.handlers || {};
  // Page scripts register: crm.on("call_progress", fn)
  window.crm.on = function (kind, fn) {
    (window.crm.handlers[kind] = window.crm.handlers[kind] || []).push(fn);
  };
  function dispatch(kind, data) {
    for (const fn of window.crm.handlers[kind] || []) {
      try { fn(data); } catch (e) { console.error(e); }
    }
  }
  window.crm.dispatch = dispatch;
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.body.dataset.user || !window.EventSource) return;
    const es = new EventSource("/events");
    window.crm.source = es;
    es.onmessage = function (msg) {
      let ev; try { ev = JSON.parse(msg.data); } catch (e) { return; }
      dispatch(ev.kind, ev.data);
    };
    es.onopen = function () { document.body.dataset.live = "1"; };
  });
})();
