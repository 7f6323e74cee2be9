// Live lists on the home and calls pages: calls in progress, finished calls, callbacks.
// The rows come rendered by the server (the same templates as on page load); this file
// only puts them in place.  Without it the pages are simply static until reloaded.
"use strict";
(function () {
  const crm = window.crm;
  if (!crm) return;
  const q = (sel, root) => (root || document).querySelector(sel);
  const qa = (sel, root) => Array.from((root || document).querySelectorAll(sel));

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
      if (d.listed && d.row_html) {
        const row = crm.rowFromHTML(d.row_html);
        if (!row) continue;
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
