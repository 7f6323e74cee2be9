// Live lists on the home and calls pages: calls in progress, finished calls, callbacks.
// Finished calls and callbacks come rendered by the server (the same templates as on page
// load); a call in progress changes several times a second on a busy PBX, so its row is
// built here from the update's fields, cell for cell as _live_row.html renders it on page
// load (tests/browser/test_live_row.py compares the two).  Without this file the pages
// are simply static until reloaded.
"use strict";
(function () {
  const crm = window.crm;
  if (!crm) return;
  const q = (sel, root) => (root || document).querySelector(sel);
  const qa = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const _ = crm._;
  const el = crm.el;
  const muted = (text) => el("span", { class: "muted" }, text);

  // A call in progress as _live_row.html renders it (text only: nothing parsed as HTML).
  function liveRow(d) {
    const num = el("td", { class: "c-num num" });
    if (d.direction === "internal") {
      num.append(crm.dialLink(d.caller, d.number_display) || "");
      if (d.caller_user) num.append(" ", muted(d.caller_user));
    } else {
      num.append(crm.dialLink(d.number, d.number_display) || "");
    }
    if (d.caller_name && d.direction === "inbound") {
      num.append(el("div", { class: "muted small" }, d.caller_name));
    }
    const who = el("td", { class: "c-who" });
    const c = d.contact;
    if (c && c.other_rep) who.append(muted(_("known contact of another rep")));
    else if (c && c.pending) who.append(muted(_("looking up…")));
    else if (c) {
      who.append(d.can_open ? el("a", { href: c.url }, c.name) : String(c.name || ""));
      if (c.is_lead) who.append(" ", el("span", { class: "badge lead" }, _("lead")));
      if (c.company) who.append(el("div", { class: "muted small" }, c.company));
    } else if (d.direction === "internal") who.append(muted(_("internal")));
    else who.append(muted(_("unknown number")));
    const state = el("td", { class: "c-outcome c-state" });
    if (d.state === "answered") {
      state.append(el("span", { class: "badge answered" }, _("on call")));
      const by = d.answered_by_name || (d.direction !== "inbound" && d.caller_user);
      if (by) state.append(" ", by);
      if (d.answered_by && d.direction !== "outbound") {
        state.append(" ", muted(_("ext %(answered_by)s", { answered_by: d.answered_by })));
      }
    } else if (d.state === "ringing") {
      state.append(el("span", { class: "badge ringing" }, _("ringing")));
      if (d.ringing && d.ringing.length) {
        state.append(" ", muted(_("ext %(ringing)s", { ringing: d.ringing.join(", ") })));
      } else if (d.direction === "inbound") state.append(" ", muted(_("waiting")));
    } else {
      state.append(el("span", { class: "badge" }, _("ended")));
    }
    return el("tr", { class: "live-row state-" + d.state, "data-linkedid": d.linkedid },
      el("td", { class: "c-dir" }, el("span", { class: "badge " + d.direction }, crm.words(d.direction))),
      num, who, state,
      el("td", { class: "c-since nowrap opt" },
        el("span", { class: "since", "data-since": d.started_at }, crm.formatTime(d.started_at, "time_s"))));
  }
  crm.liveRow = liveRow;

  function setEmpty(table) {
    if (!table) return;
    const has = !!q("tbody tr", table);
    const wrap = table.closest(".table-wrap");
    if (wrap) wrap.hidden = !has;
    const card = table.closest("section, .card");
    const empty = card && q(".empty", card);
    if (empty) empty.hidden = has;
  }
  function flash(row) {
    row.classList.add("fresh");
    setTimeout(function () { row.classList.remove("fresh"); }, 2500);
  }
  function setCount(id, n) {
    const node = document.getElementById(id);
    if (node) node.textContent = String(n);
  }
  function counts() {
    const live = q("[data-live-list]");
    if (live) setCount("live-count", qa("tbody tr", live).length);
    const cb = document.getElementById("callbacks");
    if (cb) {
      setCount("callback-count", qa("tbody tr", cb).length);
      setCount("overdue-count", qa("tbody tr.overdue", cb).length);
    }
    const today = document.getElementById("today-calls");
    if (today) setCount("today-count", qa("tbody tr", today).length);
  }

  // calls in progress
  crm.on("call_progress", function (d) {
    for (const table of qa("[data-live-list]")) {
      const tbody = q("tbody", table);
      const old = q('tr[data-linkedid="' + CSS.escape(d.linkedid) + '"]', tbody);
      if (d.listed) {
        const row = liveRow(d);
        if (old) old.replaceWith(row);
        else { tbody.prepend(row); flash(row); }
        crm.updated(row);
      } else if (old) {
        old.remove();
      }
      setEmpty(table);
    }
    counts();
  });

  // finished calls
  crm.on("call_recorded", function (d) {
    if (!d.call) return;
    for (const old of qa('[data-live-list] tr[data-linkedid="' + CSS.escape(d.call.linkedid) + '"]')) {
      const table = old.closest("table");
      old.remove();
      setEmpty(table);
    }
    for (const table of qa("[data-call-list]")) {
      const since = parseFloat(table.dataset.since || "0");
      if (since && d.call.started_at < since) continue;
      const tbody = q("tbody", table);
      const row = crm.rowFromHTML(d.row_html);
      if (!row) continue;
      const old = q('tr[data-call="' + d.call.id + '"]', tbody);
      if (old) old.replaceWith(row);
      else {
        // newest first: before the first row that started earlier
        const later = qa("tr[data-started]", tbody).find(
          (r) => parseFloat(r.dataset.started) <= d.call.started_at);
        if (later) tbody.insertBefore(row, later); else tbody.append(row);
        flash(row);
      }
      crm.updated(row);
      setEmpty(table);
    }
    counts();
  });

  // callbacks (opened, joined, closed; claimed, attempted or snoozed; gone overdue)
  function onCallback(d) {
    const table = document.getElementById("callbacks");
    if (!table || !d.task) return;
    const tbody = q("tbody", table);
    const old = q('tr[data-task="' + d.task.id + '"]', tbody);
    if (d.task.status === "open" && d.row_html) {
      const row = crm.rowFromHTML(d.row_html);
      if (row) {
        if (old) old.remove();
        const after = qa("tr[data-due]", tbody).find(
          (r) => parseFloat(r.dataset.due) > d.task.due_at);
        if (after) tbody.insertBefore(row, after); else tbody.append(row);
        if (!old) flash(row);
        crm.updated(row);
      }
    } else if (old) {
      old.remove();
    }
    setEmpty(table);
    counts();
  }
  for (const kind of ["callback_opened", "callback_joined", "callback_closed",
                      "callback_updated", "callback_overdue"]) {
    crm.on(kind, onCallback);
  }

  // callbacks become overdue while the page is open
  setInterval(function () {
    const now = Date.now() / 1000;
    for (const row of qa("#callbacks tr[data-due]")) {
      if (!row.classList.contains("overdue") && parseFloat(row.dataset.due) < now) {
        row.classList.add("overdue");
      }
    }
    counts();
  }, 30000);
})();
