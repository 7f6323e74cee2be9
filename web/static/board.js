// The supervisor board (/board) and the wall board (/board/wall), kept live over
// GET /board/events.  The page comes complete from the server; this file replaces a rep's
// row or a queue's card when a message says it changed, ticks the durations, and sends
// the action forms without leaving the page.  Text only: nothing is parsed as HTML.
"use strict";
(function () {
  const root = document.getElementById("board-root");
  if (!root || !window.EventSource) return;
  const mode = root.dataset.mode;
  const L = JSON.parse(document.getElementById("board-labels").textContent || "{}");
  const csrf = root.dataset.csrf;
  // the server's clock minus ours: durations agree with the server's
  let skew = parseFloat(root.dataset.now) - Date.now() / 1000;
  const reps = {};
  const queues = {};
  const order = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

  const el = window.crm.el; // app.js (loaded first on every page): text only, no HTML
  function fmt(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }
  function now() { return Date.now() / 1000 + skew; }
  function since(epoch) {
    return el("span", { class: "num", "data-since": epoch }, fmt(now() - epoch));
  }
  function tick() {
    for (const node of document.querySelectorAll("[data-since]")) {
      node.textContent = fmt(now() - parseFloat(node.dataset.since));
    }
  }
  function sub(text, values) {
    return text.replace(/%\((\w+)\)s/g, (_, k) => (values[k] === undefined ? "" : values[k]));
  }
  function hidden(name, value) { return el("input", { type: "hidden", name: name, value: value }); }
  function form(action, fields, ...controls) {
    const f = el("form", { method: "post", action: action, class: "inline board-act" },
      hidden("_csrf", csrf), ...Object.entries(fields).map(([k, v]) => hidden(k, v)), ...controls);
    return f;
  }
  function who(r) { return r.user_name || r.name || r.extension; }

  // -- a rep ---------------------------------------------------------------------------
  function repRow(r) {
    const call = r.call;
    const callCell = el("td", { "data-role": "call" });
    if (call) {
      callCell.append(el("span", { class: "badge " + call.direction }, L[call.direction] || ""), " ");
      if (call.contact) callCell.append(el("a", { href: call.contact.url }, call.contact.name), " ");
      else if (call.other_user) callCell.append(call.other_user, " ");
      else if (call.other_name) callCell.append(call.other_name, " ");
      callCell.append(el("span", { class: "muted" }, call.other_number || ""));
      if (call.queue) callCell.append(" ", el("span", { class: "badge tag" }, call.queue));
    }
    const actions = el("td", { class: "board-actions" });
    if ((r.queues || []).length) {
      if ((r.paused_queues || []).length) {
        actions.append(form("/board/pause", { extension: r.extension, paused: "0" },
          el("button", { type: "submit" }, L.unpause)));
      } else {
        actions.append(form("/board/pause", { extension: r.extension, paused: "1" },
          el("input", { name: "reason", maxlength: 80, size: 10, placeholder: L.reason,
            "aria-label": L.pause_reason }),
          el("button", { type: "submit" }, L.pause)));
      }
    }
    return el("tr", { id: "rep-" + r.extension, "data-ext": r.extension, class: "rep state-" + r.state },
      el("td", null, el("strong", null, who(r)), " ",
        el("span", { class: "muted small" }, sub(L.ext, { ext: r.extension }))),
      el("td", null, el("span", { class: "badge state state-" + r.state, "data-role": "state" }, L[r.state] || r.state)),
      el("td", { class: "num" }, since(call ? call.since : r.since)),
      callCell,
      el("td", { "data-role": "reason" }, r.paused_reason || ""),
      el("td", { "data-role": "queues" }, (r.queues || []).join(", ")),
      actions);
  }
  function wallRep(r) {
    return el("div", { class: "wall-rep state-" + r.state, id: "rep-" + r.extension, "data-ext": r.extension },
      el("b", null, who(r)), el("span", { "data-role": "state" }, L[r.state] || r.state),
      since(r.call ? r.call.since : r.since));
  }
  function putRep(r) {
    reps[r.extension] = r;
    const fresh = mode === "wall" ? wallRep(r) : repRow(r);
    const old = document.getElementById("rep-" + r.extension);
    if (old) {
      if (old.contains(document.activeElement)) return; // do not take a half-typed reason away
      old.replaceWith(fresh);
    } else {
      const list = mode === "wall" ? document.getElementById("wall-reps")
        : document.querySelector("#rep-table tbody");
      const after = Array.from(list.children).find((n) => order(n.dataset.ext, r.extension) > 0);
      list.insertBefore(fresh, after || null);
    }
    const none = document.getElementById("no-reps");
    if (none) none.hidden = true;
    counts();
  }
  function counts() {
    const n = {};
    for (const r of Object.values(reps)) n[r.state] = (n[r.state] || 0) + 1;
    for (const node of document.querySelectorAll("[data-count]")) {
      const b = node.querySelector("b");
      if (b) b.textContent = String(n[node.dataset.count] || 0);
    }
  }

  // -- a queue -------------------------------------------------------------------------
  const MEMBER = { 2: "on_call", 3: "on_call", 4: "offline", 5: "offline", 6: "ringing", 7: "ringing", 8: "on_hold" };
  function longest(q) {
    const w = q.waiting || [];
    return w.length ? Math.min(...w.map((c) => c.joined_at)) : null;
  }
  function queueCard(q) {
    const first = longest(q);
    const waiting = el("ol", { class: "waiting", "data-role": "waiting" });
    for (const c of q.waiting || []) {
      waiting.append(el("li", { "data-uid": c.uniqueid }, el("span", { class: "pos" }, c.position), " ",
        c.name || "", " ", el("span", { class: "muted" }, c.number || L.withheld), " ", since(c.joined_at)));
    }
    const members = el("ul", { class: "members", "data-role": "members" });
    const inQueue = new Set();
    for (const m of q.members || []) {
      inQueue.add(m.extension);
      const state = m.paused ? "paused" : MEMBER[m.status] || "available";
      members.append(el("li", { "data-ext": m.extension },
        el("span", { class: "badge state state-" + state }, m.user_name || m.name || m.extension),
        m.paused && m.paused_reason ? el("span", { class: "muted small" }, " " + m.paused_reason) : null,
        form("/board/membership", { extension: m.extension, queue: q.queue, op: "remove" },
          el("button", { type: "submit", class: "linklike", title: sub(L.remove, { queue: q.queue }) }, "✕"))));
    }
    const select = el("select", { name: "extension" });
    for (const r of Object.values(reps).sort((a, b) => order(a.extension, b.extension))) {
      if (!inQueue.has(r.extension)) select.append(el("option", { value: r.extension }, who(r) + " (" + r.extension + ")"));
    }
    const add = form("/board/membership", { queue: q.queue, op: "add" }, select, el("button", { type: "submit" }, L.add));
    add.classList.add("add-member");
    return el("article", { class: "queue-card", id: "queue-" + q.queue, "data-queue": q.queue },
      el("h3", null, q.queue),
      el("p", { class: "queue-figs" },
        el("span", { class: "fig" }, el("b", { "data-role": "waiting-count" }, String((q.waiting || []).length)), " " + L.waiting),
        " ",
        el("span", { class: "fig" }, L.longest + " ", first ? el("b", { "data-role": "longest", "data-since": first }, fmt(now() - first))
          : el("b", { "data-role": "longest" }, "–"))),
      waiting, members,
      q.hidden_members ? el("p", { class: "muted small" },
        sub(L.other_teams, { num: q.hidden_members })) : null,
      select.options.length ? add : null);
  }
  function wallQueue(q) {
    const first = longest(q);
    const n = (q.waiting || []).length;
    return el("article", { class: "wall-queue", "data-queue": q.queue }, el("h2", null, q.queue),
      el("div", { class: "wall-figs" },
        el("div", { class: "wall-fig" + (n ? " busy" : "") }, el("b", { "data-role": "waiting-count" }, String(n)), el("span", null, L.waiting)),
        el("div", { class: "wall-fig" }, first ? el("b", { "data-role": "longest", "data-since": first }, fmt(now() - first))
          : el("b", { "data-role": "longest" }, "–"), el("span", null, L.longest_wait))));
  }
  function putQueue(q) {
    const list = document.getElementById(mode === "wall" ? "wall-queues" : "queue-list");
    const old = list.querySelector('[data-queue="' + CSS.escape(q.queue) + '"]');
    if (q.exists === false) {
      delete queues[q.queue];
      if (old) old.remove();
      return;
    }
    queues[q.queue] = q;
    const fresh = mode === "wall" ? wallQueue(q) : queueCard(q);
    if (old) {
      if (old.contains(document.activeElement)) return;
      old.replaceWith(fresh);
    } else list.append(fresh);
    const none = document.getElementById("no-queues");
    if (none) none.hidden = true;
  }

  // -- the stream ----------------------------------------------------------------------
  function apply(msg) {
    if (msg.kind === "board") {
      skew = msg.data.now - Date.now() / 1000;
      for (const r of msg.data.reps) reps[r.extension] = r;
      for (const r of msg.data.reps) putRep(r);
      for (const q of msg.data.queues) putQueue(q);
    } else if (msg.kind === "rep") putRep(msg.data);
    else if (msg.kind === "queue") putQueue(msg.data);
    if (msg.kind === "queue" || msg.kind === "rep") refreshFigures();
    document.dispatchEvent(new CustomEvent("board:updated", { detail: msg }));
  }

  // -- today's figures (stored facts: web/pages/queue_figures.py) ------------------------
  // A queue or rep change (a caller joined, was answered or gave up, a call ended) moves
  // them: the section is read again from the server a few seconds later (the call is
  // stored by then), at most once per few seconds, and at least every minute.
  let figuresDue = null;
  function refreshFigures() {
    if (figuresDue || !document.getElementById("queue-figures")) return;
    figuresDue = setTimeout(async function () {
      figuresDue = null;
      try {
        const resp = await fetch(location.pathname, { headers: { Accept: "text/html" } });
        if (!resp.ok) return;
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const fresh = doc.getElementById("queue-figures");
        const current = document.getElementById("queue-figures");
        if (fresh && current) current.replaceWith(document.importNode(fresh, true));
      } catch (err) { console.error(err); }
    }, 4000);
  }
  setInterval(refreshFigures, 60000);
  const es = new EventSource("/board/events");
  es.onmessage = function (e) {
    try { apply(JSON.parse(e.data)); } catch (err) { console.error(err); }
  };
  setInterval(tick, 1000);

  // -- actions without leaving the page -------------------------------------------------
  const notice = document.getElementById("board-notice");
  function say(ok, text) {
    if (!notice) return;
    notice.hidden = false;
    notice.className = "alert " + (ok ? "ok" : "error");
    notice.textContent = text;
  }
  document.addEventListener("submit", async function (e) {
    const f = e.target;
    if (!f.classList || !f.classList.contains("board-act")) return;
    e.preventDefault();
    const button = f.querySelector("button");
    if (button) button.disabled = true; // one click, one action
    try {
      const resp = await fetch(f.action, {
        method: "POST", body: new URLSearchParams(new FormData(f)),
        headers: { Accept: "application/json", "X-CSRF-Token": csrf }, credentials: "same-origin",
      });
      const body = await resp.json().catch(() => ({}));
      say(resp.ok, body.message || (body.error && body.error.message) || L.failed);
    } catch (err) {
      say(false, L.failed);
    } finally {
      if (button) button.disabled = false;
    }
  });
})();
