// Switchboard CRM: live updates over SSE, and the screen pop. Pages work without this file.
//
// One EventSource per page (GET /events) carries {"kind", "data"} messages; page scripts
// subscribe with crm.on(kind, fn).  After inserting server-rendered HTML, scripts call
// crm.updated(root), which fires a "crm:updated" event on document (detail.root) so other
// scripts (click-to-call) can wire what is new.
"use strict";
(function () {
  const crm = (window.crm = window.crm || {});
  crm.csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  crm.handlers = crm.handlers || {};
  crm.on = function (kind, fn) {
    (crm.handlers[kind] = crm.handlers[kind] || []).push(fn);
  };
  function dispatch(kind, data) {
    for (const fn of crm.handlers[kind] || []) {
      try { fn(data); } catch (e) { console.error(e); }
    }
  }
  crm.dispatch = dispatch;
  crm.updated = function (root) {
    document.dispatchEvent(new CustomEvent("crm:updated", { detail: { root: root } }));
  };

  // -- small DOM helpers (text only: nothing from the server is parsed as HTML here) --
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  crm.el = el;
  crm.dialLink = function (number, shown) {
    if (!number) return null;
    return el("a", { class: "dial", href: "tel:" + number, "data-dial": number,
      title: "Call " + (shown || number) }, shown || number);
  };
  // Rows rendered by the server's own templates (autoescaped jinja2), for the live lists.
  crm.rowFromHTML = function (html) {
    const tbody = document.createElement("tbody");
    tbody.innerHTML = (html || "").trim();
    return tbody.firstElementChild;
  };
  function when(epoch) {
    if (!epoch) return "";
    const d = new Date(epoch * 1000);
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }
  crm.when = when;
  crm.words = (s) => String(s || "").replace(/_/g, " ");

  // -- the PBX link dot ---------------------------------------------------------------
  crm.on("link_status", function (d) {
    const dot = document.getElementById("link-dot");
    if (!dot || !d) return;
    dot.classList.toggle("connected", d.state === "connected");
    dot.classList.toggle("down", !!d.state && d.state !== "connected");
    dot.title = "PBX link: " + (d.state || "unknown");
  });

  // -- the screen pops: static/pops.js (the stack, the wrap-up card, notifications) -----

  // -- the stream -------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.body.dataset.user || !window.EventSource) return;
    const es = new EventSource("/events");
    crm.source = es;
    es.onmessage = function (msg) {
      let ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      dispatch(ev.kind, ev.data);
    };
    es.onopen = function () { document.body.dataset.live = "1"; };
    es.onerror = function () { document.body.dataset.live = "0"; };
  });
})();
