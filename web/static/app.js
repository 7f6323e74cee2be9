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

  // -- the reader's language, time zone and formats (#crm-i18n, from web/formatting.py) --
  // Strings come from the server's catalogs: every _("...") in these scripts is extracted
  // with the templates' and served translated in the page, so there is no second table.
  const I18N = (function () {
    const node = document.getElementById("crm-i18n");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  })();
  crm.i18n = I18N;
  // "%(name)s", "%(n)d", "%(n)02d" as Python formats them (the catalogs' python-format)
  function interpolate(text, vars) {
    return text.replace(/%\((\w+)\)(0?\d*)([sd])|%%/g, function (all, name, width, kind) {
      if (all === "%%") return "%";
      let v = vars && name in vars ? vars[name] : "";
      if (kind === "d") v = String(Math.trunc(Number(v) || 0));
      else v = String(v);
      if (width) {
        const w = parseInt(width, 10);
        const fill = width[0] === "0" ? "0" : " ";
        while (v.length < w) v = fill + v;
      }
      return v;
    });
  }
  function _(message, vars) {
    const text = (I18N.strings && I18N.strings[message]) || message;
    return vars ? interpolate(text, vars) : text;
  }
  crm._ = _;
  crm.interpolate = interpolate;

  function pad(n, width) {
    let s = String(n);
    while (s.length < width) s = "0" + s;
    return s;
  }
  // The wall-clock fields of a moment in the reader's time zone.
  function fields(epoch) {
    const fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: I18N.tz || undefined, hourCycle: "h23", year: "numeric", month: "numeric",
      day: "numeric", hour: "numeric", minute: "numeric", second: "numeric",
    });
    const o = {};
    for (const p of fmt.formatToParts(new Date(epoch * 1000))) o[p.type] = p.value;
    return { y: +o.year, M: +o.month, d: +o.day, H: +o.hour % 24, m: +o.minute, s: +o.second };
  }
  // An LDML pattern (the same one Babel formats with on the server) filled in.
  function ldml(pattern, f) {
    let out = "";
    let i = 0;
    while (i < pattern.length) {
      const ch = pattern[i];
      if (ch === "'") {
        if (pattern[i + 1] === "'") { out += "'"; i += 2; continue; }
        const end = pattern.indexOf("'", i + 1);
        out += pattern.slice(i + 1, end < 0 ? pattern.length : end);
        i = end < 0 ? pattern.length : end + 1;
        continue;
      }
      if (!/[A-Za-z]/.test(ch)) { out += ch; i++; continue; }
      let j = i;
      while (pattern[j] === ch) j++;
      const n = j - i;
      i = j;
      if (ch === "y") out += n === 2 ? pad(f.y % 100, 2) : pad(f.y, n);
      else if (ch === "M" || ch === "L") {
        if (n >= 4) out += (I18N.months_wide || [])[f.M - 1] || f.M;
        else if (n === 3) out += (I18N.months || [])[f.M - 1] || f.M;
        else out += pad(f.M, n);
      } else if (ch === "d") out += pad(f.d, n);
      else if (ch === "H") out += pad(f.H, n);
      else if (ch === "m") out += pad(f.m, n);
      else if (ch === "s") out += pad(f.s, n);
    }
    return out;
  }
  // A moment as the page's |time filter shows it (style: date, time, datetime...).
  crm.formatTime = function (epoch, style) {
    if (epoch === null || epoch === undefined || epoch === "") return "";
    const patterns = I18N.patterns || {};
    const pattern = patterns[style || "datetime"] || patterns.datetime || "yyyy-MM-dd HH:mm";
    return ldml(pattern, fields(Number(epoch)));
  };
  // Seconds as the page's |duration filter shows them.
  crm.formatDuration = function (seconds) {
    if (seconds === null || seconds === undefined || seconds === "") return "";
    const s = Math.round(Number(seconds));
    const d = I18N.durations || { s: "%(s)ds", ms: "%(m)dm %(s)02ds", hm: "%(h)dh %(m)02dm" };
    if (s < 60) return interpolate(d.s, { s: s });
    if (s < 3600) return interpolate(d.ms, { m: Math.floor(s / 60), s: s % 60 });
    return interpolate(d.hm, { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
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
      title: _("Call %(number)s", { number: shown || number }) }, shown || number);
  };
  // Rows rendered by the server's own templates (autoescaped jinja2), for the live lists.
  crm.rowFromHTML = function (html) {
    const tbody = document.createElement("tbody");
    tbody.innerHTML = (html || "").trim();
    return tbody.firstElementChild;
  };
  // A moment in a pop: the reader's time zone and pattern, as the tables under it.
  function when(epoch) {
    return epoch ? crm.formatTime(epoch, "datetime") : "";
  }
  crm.when = when;
  // Code values (an outcome, a link state) in the reader's words (web/labels.py).
  const words = (s) => (I18N.labels && I18N.labels[s]) || String(s || "").replace(/_/g, " ");
  crm.words = words;

  // -- the PBX link dot ---------------------------------------------------------------
  crm.on("link_status", function (d) {
    const dot = document.getElementById("link-dot");
    if (!dot || !d) return;
    dot.classList.toggle("connected", d.state === "connected");
    dot.classList.toggle("down", !!d.state && d.state !== "connected");
    dot.title = _("PBX link: %(state)s", { state: d.state ? words(d.state) : _("unknown") });
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

  // -- the screen pops: static/pops.js (the stack, the wrap-up card, notifications) -----

  // -- the ☰ menu on a narrow screen: a real button (Enter/Space, aria-expanded); Escape
  //    closes it and gives the focus back to the button. Without this the menu stays open.
  function setupMenu() {
    const button = document.getElementById("navburger");
    const nav = document.getElementById("mainnav");
    if (!button || !nav) return;
    function set(open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      nav.classList.toggle("open", open);
    }
    button.hidden = false;
    button.closest(".topbar").classList.add("menu-ready");
    button.addEventListener("click", function () {
      set(button.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        set(false);
        button.focus();
      }
    });
  }
  // A table that scrolls sideways (.table-wrap) must take the focus, so a keyboard user can
  // scroll it: the templates say tabindex="0"; this covers a page that forgot it.
  function focusableTables(root) {
    for (const wrap of (root || document).querySelectorAll(".table-wrap:not([tabindex])")) {
      wrap.tabIndex = 0;
    }
  }
  function setupPage() { setupMenu(); focusableTables(document); }
  document.addEventListener("crm:updated", function (ev) { focusableTables(ev.detail.root); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setupPage);
  else setupPage();

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
