// The screen pops as a stack, and the wrap-up card a call turns into when it ends.
//
// * The call I am on stays on top; a required wrap-up next; then ringing calls (newest
//   first); then an optional wrap-up and notices.  Only the top one is open: the others
//   collapse to one line under a "N more" bar that opens them all.  The stack never grows
//   past the window (it scrolls inside itself) and sits at the bottom on a phone.
// * When a call I was on ends, its pop becomes a wrap-up card: result, comment, optional
//   follow-up; Enter or Save posts it to /calls/{id}/notes (the call page's own form, so
//   the rules are the server's).  It is dismissable unless the admin made it required.
// * With the tab hidden, a new ringing call raises a browser notification (once the user
//   allowed them, from the stack's bell) and, if switched on, a short sound.
// Everything from the server is put in as text, never parsed as HTML.
"use strict";
(function () {
  const crm = window.crm;
  if (!crm || !crm.el) return;
  const el = crm.el;
  const when = crm.when;
  const words = crm.words;
  const _ = crm._ || function (text) { return text; };

  const entries = new Map(); // key -> {kind: "call"|"wrapup"|"notice", node, data, at}
  const dismissed = new Set();
  let expanded = false;
  let options = null; // GET /wrapup/options: the results (value, label), required
  let optionsWaiting = null;

  function loadOptions() {
    if (options) return Promise.resolve(options);
    if (!optionsWaiting) {
      optionsWaiting = fetch("/wrapup/options", { headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : null))
        .then((o) => { options = o || { results: [], required: false }; return options; })
        .catch(() => { optionsWaiting = null; return { results: [], required: false }; });
    }
    return optionsWaiting;
  }
  crm.wrapupOptions = loadOptions;

  // -- what a pop says ----------------------------------------------------------------
  function closeButton(key, label) {
    const close = el("button", { class: "pop-close", type: "button", title: label,
      "aria-label": label }, "×");
    close.addEventListener("click", function (ev) {
      ev.stopPropagation();
      dismissed.add(key);
      remove(key);
    });
    return close;
  }

  function popTitle(d) {
    if (d.contact && d.contact.other_rep) return _("Known contact of another rep");
    if (d.contact && d.contact.name) return d.contact.name;
    if (d.direction === "internal") {
      return d.caller_user || d.caller_name || _("ext %(ext)s", { ext: d.caller });
    }
    if (d.caller_name && d.direction === "inbound") return d.caller_name;
    return _("Unknown caller");
  }
  crm.popTitle = popTitle;

  function popBody(d) {
    const c = d.contact;
    const parts = [];
    const state = d.pop === "on_call" ? _("On call") : _("Incoming call");
    const where = d.pop === "on_call" ? "" : (d.did ? " · " + _("line %(line)s", { line: d.did }) : "");
    parts.push(el("div", { class: "pop-state" },
      el("span", { class: "pop-dot" }), state + where));
    parts.push(el("div", { class: "pop-title" }, popTitle(d),
      c && c.is_lead ? el("span", { class: "badge lead" }, _("lead")) : null));
    const sub = [];
    if (c && c.company) sub.push(c.company);
    if (c && c.owner) sub.push(_("owner %(name)s", { name: c.owner }));
    else if (c && c.id && d.details) sub.push(_("shared contact"));
    if (c && c.other_rep && d.caller_name && d.direction === "inbound") {
      sub.push(_("caller ID: %(name)s", { name: d.caller_name }));
    }
    if (!c && d.direction === "internal") sub.push(_("colleague, ext %(ext)s", { ext: d.caller }));
    if (!c && d.direction === "inbound" && d.caller_name) {
      sub.push(_("caller ID: %(name)s", { name: d.caller_name }));
    }
    if (sub.length) parts.push(el("div", { class: "pop-sub" }, sub.join(" · ")));
    parts.push(el("div", { class: "pop-number" }, crm.dialLink(d.number, d.number_display)));
    const facts = el("ul", { class: "pop-facts" });
    if (d.last_call) {
      const lc = d.last_call;
      facts.append(el("li", { class: "pop-last-call" },
        _("Last call %(when)s", { when: when(lc.at) }) + " · " +
        words(lc.outcome) + (lc.rep ? " · " + lc.rep : "")));
    } else if (d.details && d.direction !== "internal") {
      facts.append(el("li", null, _("First call from this number")));
    }
    if (d.open_callback) {
      const cb = d.open_callback;
      facts.append(el("li", { class: "pop-callback" + (cb.overdue ? " warn" : "") },
        _("Open callback") + " · " + _("missed: %(count)s", { count: cb.missed_count }) +
        " · " + _("due %(due_at)s", { due_at: when(cb.due_at) }) +
        (cb.owner ? " · " + cb.owner : "")));
    }
    if (facts.children.length) parts.push(facts);
    const actions = el("div", { class: "pop-actions" });
    if (c && c.id && d.can_open) {
      actions.append(el("a", { class: "button primary", href: c.url || "/contacts/" + c.id },
        _("Open card")));
    } else if (!c && d.direction !== "internal" && d.number) {
      actions.append(el("a", { class: "button", href: "/contacts/new?phone=" +
        encodeURIComponent(d.number) }, _("Create contact")));
    }
    actions.append(closeButton(d.linkedid, _("Hide")));
    parts.push(actions);
    return parts;
  }

  // -- the stack ------------------------------------------------------------------------
  function rank(e) {
    if (e.kind === "call") return e.data.pop === "on_call" ? 0 : 2;
    if (e.kind === "wrapup") return options && options.required ? 1 : 3;
    return 4;
  }

  function layout() {
    const box = document.getElementById("pops");
    if (!box) return;
    const list = Array.from(entries.values()).sort(
      (a, b) => rank(a) - rank(b) || b.at - a.at);
    let bar = box.querySelector(".pop-bar");
    if (!bar) bar = makeBar(box);
    const more = list.length - 1;
    bar.hidden = list.length === 0;
    const toggle = bar.querySelector(".pop-more");
    toggle.hidden = more < 1;
    toggle.textContent = expanded ? _("Show fewer") : _("+%(num)d more", { num: more });
    toggle.setAttribute("aria-expanded", expanded ? "true" : "false");
    list.forEach(function (e, i) {
      e.node.classList.toggle("top", i === 0);
      e.node.classList.toggle("collapsed", i > 0 && !expanded);
      box.append(e.node);
    });
    box.dataset.count = String(list.length);
    if (more < 1) expanded = false;
  }

  function makeBar(box) {
    const bar = el("div", { class: "pop-bar", hidden: true });
    const toggle = el("button", { type: "button", class: "pop-more linklike" }, "");
    toggle.addEventListener("click", function () { expanded = !expanded; layout(); });
    bar.append(toggle);
    if ("Notification" in window && Notification.permission === "default") {
      const bell = el("button", { type: "button", class: "pop-bell linklike",
        title: _("Notify me of calls while this tab is hidden") },
        _("Notify me"));
      bell.addEventListener("click", function () {
        Notification.requestPermission().then(function () { bell.remove(); });
      });
      bar.append(bell);
    }
    const sound = el("label", { class: "pop-sound small" });
    const box2 = el("input", { type: "checkbox" });
    box2.checked = localStorage.getItem("crm.popSound") === "1";
    box2.addEventListener("change", function () {
      localStorage.setItem("crm.popSound", box2.checked ? "1" : "0");
    });
    sound.append(box2, " " + _("sound"));
    bar.append(sound);
    box.prepend(bar);
    return bar;
  }

  function put(key, kind, node, data) {
    const old = entries.get(key);
    if (old && old.node !== node) old.node.replaceWith(node);
    entries.set(key, { kind: kind, node: node, data: data, at: old ? old.at : Date.now() });
    if (!old || old.node !== node) {
      node.addEventListener("click", function () {
        if (node.classList.contains("collapsed")) { expanded = true; layout(); }
      });
    }
    layout();
  }

  function remove(key) {
    const e = entries.get(key);
    if (!e) return;
    entries.delete(key);
    e.node.classList.add("closing");
    setTimeout(function () { e.node.remove(); }, 160);
    layout();
  }

  // -- a call's pop -------------------------------------------------------------------
  function showPop(d) {
    if (dismissed.has(d.linkedid)) return;
    const e = entries.get(d.linkedid);
    if (e && e.kind === "wrapup") return; // ended here already: the wrap-up stands
    const fresh = !e;
    const pop = e ? e.node : el("div", { class: "pop", role: "alert", "data-linkedid": d.linkedid });
    pop.classList.toggle("on-call", d.pop === "on_call");
    pop.classList.toggle("ringing", d.pop === "ringing");
    pop.dataset.state = d.pop;
    pop.replaceChildren(...popBody(d));
    put(d.linkedid, "call", pop, d);
    crm.updated(pop);
    if (fresh && d.pop === "ringing") alertHidden(d);
  }

  function alertHidden(d) {
    if (!document.hidden) return;
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        const n = new Notification(popTitle(d), { body: d.number_display || d.number || "",
          tag: "call-" + d.linkedid });
        n.onclick = function () { window.focus(); n.close(); };
      } catch (err) { /* some browsers allow notifications only from a service worker */ }
    }
    if (localStorage.getItem("crm.popSound") === "1") beep();
  }

  function beep() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      const ctx = new Ctx();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.25);
      osc.onended = function () { ctx.close(); };
    } catch (err) { /* no audio: the notification is enough */ }
  }
  crm.pops = entries;

  // -- the wrap-up card -----------------------------------------------------------------
  function toWrapup(linkedid, d, callId) {
    if (dismissed.has(linkedid)) { remove(linkedid); return; }
    const e = entries.get(linkedid);
    if (e && e.kind === "wrapup") {
      if (callId) setCall(e.node, callId);
      return;
    }
    const card = el("div", { class: "wrapup-card", role: "region", "data-linkedid": linkedid,
      "aria-label": "Wrap-up" });
    put(linkedid, "wrapup", card, d || {});
    loadOptions().then(function (o) {
      if (!entries.has(linkedid)) return;
      card.replaceChildren(...wrapupBody(linkedid, d || {}, o));
      const known = callId || card.dataset.call; // call_recorded may have come first
      if (known) setCall(card, known);
      layout();
      const first = card.querySelector("select, input");
      if (first && card.classList.contains("top") && !isTyping()) first.focus();
    });
  }

  function isTyping() {
    const a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT");
  }

  function setCall(card, callId) {
    card.dataset.call = String(callId);
    const save = card.querySelector("button[type=submit]");
    if (save) save.disabled = false;
    const link = card.querySelector("a.wrapup-call");
    if (link) { link.href = "/calls/" + callId + "#notes"; link.hidden = false; }
    const wait = card.querySelector(".wrapup-wait");
    if (wait) wait.hidden = true;
  }

  function wrapupBody(linkedid, d, o) {
    const parts = [];
    parts.push(el("div", { class: "pop-state" }, _("Wrap-up")));
    parts.push(el("div", { class: "pop-title" }, d.linkedid ? popTitle(d) : _("Call")));
    if (d.number) parts.push(el("div", { class: "pop-number" }, d.number_display || d.number));
    const form = el("form", { class: "wrapup-form", novalidate: true });
    const result = el("select", { name: "result" }, el("option", { value: "" }, "—"));
    for (const r of o.results || []) result.append(el("option", { value: r.value }, r.label));
    form.append(el("label", null, _("Result"), result));
    form.append(el("label", null, _("Comment"),
      el("input", { name: "comment", maxlength: 4000, autocomplete: "off" })));
    if (d.number || d.direction !== "internal") {
      form.append(el("label", null, _("Follow-up (optional)"),
        el("input", { name: "follow_up", type: "datetime-local" })));
    }
    const error = el("p", { class: "wrapup-error", role: "alert", hidden: true });
    form.append(error);
    const actions = el("div", { class: "pop-actions" });
    const save = el("button", { type: "submit", class: "primary", disabled: true },
      _("Save"));
    actions.append(save);
    actions.append(el("span", { class: "wrapup-wait muted small" }, _("Saving the call…")));
    actions.append(el("a", { class: "wrapup-call small", href: "#", hidden: true },
      _("Call page")));
    if (!o.required) actions.append(closeButton(linkedid, _("Dismiss")));
    form.append(actions);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const card = form.closest(".wrapup-card");
      const callId = card && card.dataset.call;
      if (!callId || save.disabled) return;
      save.disabled = true;
      const body = new URLSearchParams(new FormData(form));
      fetch("/calls/" + encodeURIComponent(callId) + "/notes", {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": crm.csrf() },
        body: body,
      }).then(function (r) {
        return r.json().catch(function () { return { ok: false, errors: { _: "HTTP " + r.status } }; });
      }).then(function (res) {
        if (res.ok) {
          card.classList.add("saved");
          card.replaceChildren(el("div", { class: "pop-state" }, _("Wrap-up saved")));
          setTimeout(function () { remove(linkedid); }, 1200);
        } else {
          const msgs = Object.values(res.errors || {});
          error.textContent = msgs.join(" ") || "Not saved.";
          error.hidden = false;
          save.disabled = false;
        }
      }).catch(function () {
        error.textContent = _("Not saved: the server could not be reached.");
        error.hidden = false;
        save.disabled = false;
      });
    });
    parts.push(form);
    return parts;
  }
  crm.wrapupFor = toWrapup;

  // -- notices (an overdue callback) -----------------------------------------------------
  function notice(key, text, href) {
    if (dismissed.has(key)) return;
    const node = el("div", { class: "pop notice", role: "status", "data-notice": key });
    node.append(el("div", { class: "pop-state" }, text));
    const actions = el("div", { class: "pop-actions" });
    if (href) actions.append(el("a", { class: "button", href: href }, _("Open")));
    actions.append(closeButton(key, _("Dismiss")));
    node.append(actions);
    put(key, "notice", node, {});
  }

  // -- events -------------------------------------------------------------------------
  crm.on("call_progress", function (d) {
    const e = entries.get(d.linkedid);
    const wasOnCall = e && e.kind === "call" && e.data.pop === "on_call";
    if (d.pop && d.state !== "ended") showPop(d);
    else if (wasOnCall || (e && e.kind === "wrapup")) toWrapup(d.linkedid, e.data, null);
    else remove(d.linkedid);
    if (d.state === "ended" && !wasOnCall) dismissed.delete(d.linkedid);
  });
  crm.on("call_recorded", function (d) {
    if (!d.call) return;
    const key = d.call.linkedid;
    const e = entries.get(key);
    if (e && (e.kind === "wrapup" || (e.kind === "call" && e.data.pop === "on_call"))) {
      toWrapup(key, e.data, d.call.id);
    } else if (e) {
      remove(key);
    }
  });
  crm.on("callback_overdue", function (d) {
    if (!d.task) return;
    loadOptions().then(function () {
      notice("overdue-" + d.task.id, _("Callback overdue") + ": " +
        (d.task.number || ""), "/callbacks");
    });
  });
})();
