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
  const words = (s) => String(s || "").replace(/_/g, " ");

  // -- the PBX link dot ---------------------------------------------------------------
  crm.on("link_status", function (d) {
    const dot = document.getElementById("link-dot");
    if (!dot || !d) return;
    dot.classList.toggle("connected", d.state === "connected");
    dot.classList.toggle("down", !!d.state && d.state !== "connected");
    dot.title = "PBX link: " + (d.state || "unknown");
  });

  // -- the "PBX link down" banner (every user; web.linkstate says down and since when) --
  crm.on("link_status", function (d) {
    const banner = document.getElementById("link-banner");
    if (!banner || !d || d.down === undefined) return;
    banner.hidden = !d.down;
    if (d.down && d.down_since) {
      banner.dataset.since = d.down_since;
      const t = banner.querySelector(".link-since");
      if (t) {
        t.textContent = when(d.down_since);
        t.setAttribute("datetime", new Date(d.down_since * 1000).toISOString());
      }
    }
  });

  // -- the screen pop -------------------------------------------------------------------
  const pops = new Map();
  const dismissed = new Set();

  function popTitle(d) {
    if (d.contact && d.contact.other_rep) return "Known contact of another rep";
    if (d.contact && d.contact.name) return d.contact.name;
    if (d.direction === "internal") return d.caller_user || d.caller_name || ("ext " + d.caller);
    if (d.caller_name && d.direction === "inbound") return d.caller_name;
    return "Unknown caller";
  }

  function popBody(d) {
    const c = d.contact;
    const parts = [];
    const state = d.pop === "on_call" ? "On call" : "Incoming call";
    const where = d.pop === "on_call" ? "" : (d.did ? " · line " + d.did : "");
    parts.push(el("div", { class: "pop-state" },
      el("span", { class: "pop-dot" }), state + where));
    parts.push(el("div", { class: "pop-title" }, popTitle(d),
      c && c.is_lead ? el("span", { class: "badge lead" }, "lead") : null));
    const sub = [];
    if (c && c.company) sub.push(c.company);
    if (c && c.owner) sub.push("owner " + c.owner);
    else if (c && c.id && d.details) sub.push("shared contact");
    if (c && c.other_rep && d.caller_name && d.direction === "inbound") {
      sub.push("caller ID: " + d.caller_name);
    }
    if (!c && d.direction === "internal") sub.push("colleague, ext " + d.caller);
    if (!c && d.direction === "inbound" && d.caller_name) sub.push("caller ID: " + d.caller_name);
    if (sub.length) parts.push(el("div", { class: "pop-sub" }, sub.join(" · ")));
    parts.push(el("div", { class: "pop-number" }, crm.dialLink(d.number, d.number_display)));
    const facts = el("ul", { class: "pop-facts" });
    if (d.last_call) {
      const lc = d.last_call;
      facts.append(el("li", null, "Last call " + when(lc.at) + " · " + words(lc.outcome) +
        (lc.rep ? " · " + lc.rep : "")));
    } else if (d.details && d.direction !== "internal") {
      facts.append(el("li", null, "First call from this number"));
    }
    if (d.open_callback) {
      const cb = d.open_callback;
      facts.append(el("li", { class: cb.overdue ? "warn" : "" },
        "Open callback · " + cb.missed_count + " missed · due " + when(cb.due_at) +
        (cb.owner ? " · " + cb.owner : "")));
    }
    if (facts.children.length) parts.push(facts);
    const actions = el("div", { class: "pop-actions" });
    if (c && c.id && d.can_open) {
      actions.append(el("a", { class: "button primary", href: c.url || "/contacts/" + c.id },
        "Open card"));
    } else if (!c && d.direction !== "internal" && d.number) {
      actions.append(el("a", { class: "button", href: "/contacts/new?phone=" +
        encodeURIComponent(d.number) }, "Create contact"));
    }
    const close = el("button", { class: "pop-close", type: "button", title: "Hide",
      "aria-label": "Hide" }, "×");
    close.addEventListener("click", function () {
      dismissed.add(d.linkedid);
      closePop(d.linkedid);
    });
    actions.append(close);
    parts.push(actions);
    return parts;
  }

  function showPop(d) {
    if (dismissed.has(d.linkedid)) return;
    const box = document.getElementById("pops");
    if (!box) return;
    let pop = pops.get(d.linkedid);
    if (!pop) {
      pop = el("div", { class: "pop", role: "alert", "data-linkedid": d.linkedid });
      pops.set(d.linkedid, pop);
      box.prepend(pop);
    }
    pop.classList.toggle("on-call", d.pop === "on_call");
    pop.classList.toggle("ringing", d.pop === "ringing");
    pop.dataset.state = d.pop;
    pop.replaceChildren(...popBody(d));
    crm.updated(pop);
  }

  function closePop(linkedid) {
    const pop = pops.get(linkedid);
    if (!pop) return;
    pops.delete(linkedid);
    pop.classList.add("closing");
    setTimeout(function () { pop.remove(); }, 160);
  }
  crm.pops = pops;

  crm.on("call_progress", function (d) {
    if (d.pop) showPop(d);
    else closePop(d.linkedid);
    if (d.state === "ended") dismissed.delete(d.linkedid);
  });
  crm.on("call_recorded", function (d) { if (d.call) closePop(d.call.linkedid); });

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
