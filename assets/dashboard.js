// OmniNode Bridge dashboard: the live event tail (server-sent events). No build step.
// Event content is only ever written with textContent, never parsed as HTML.
(function () {
  "use strict";
  const MAX_ROWS = 500;

  function cell(row, text, href, cls) {
    const td = document.createElement("td");
    let target = td;
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      td.appendChild(a);
      target = a;
    }
    if (cls) {
      const span = document.createElement("span");
      span.className = cls;
      target.appendChild(span);
      target = span;
    }
    target.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function statusClass(status) {
    const s = String(status || "").toLowerCase();
    if (["success", "succeeded", "completed", "complete", "ok", "processed", "delivered"].includes(s)) return "ok";
    if (["failed", "failure", "error", "timeout", "timed_out", "cancelled", "rejected"].includes(s)) return "bad";
    return "pending";
  }

  function fmtMs(v) {
    if (v == null) return "–";
    if (v >= 10000) return (v / 1000).toFixed(1) + " s";
    if (v >= 100) return v.toFixed(0) + " ms";
    return v.toFixed(2) + " ms";
  }

  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toISOString().replace("T", " ").replace("Z", "");
  }

  function startTail(table) {
    const body = document.getElementById("tail-rows");
    const state = document.getElementById("tail-state");
    const count = document.getElementById("tail-count");
    let received = 0;
    const source = new EventSource(table.dataset.stream);
    source.onopen = function () { state.textContent = "live"; table.dataset.live = "1"; };
    source.onerror = function () { state.textContent = "reconnecting…"; };
    source.addEventListener("lagged", function (e) {
      state.textContent = "live (missed " + e.data + " events: too fast to show)";
    });
    source.addEventListener("trace", function (e) {
      let ev;
      try { ev = JSON.parse(e.data); } catch (_) { return; }
      const row = document.createElement("tr");
      row.className = "fresh";
      row.dataset.eventId = ev.event_id;
      cell(row, fmtTime(ev.timestamp));
      cell(row, ev.topic);
      cell(row, ev.event_type);
      cell(row, ev.status, null, "status " + statusClass(ev.status));
      cell(row, ev.namespace);
      cell(row, ev.session_id, ev.session_id ? "/dashboard/traces/session/" + encodeURIComponent(ev.session_id) : null);
      cell(row, fmtMs(ev.processing_time_ms)).className = "num";
      cell(row, ev.event_id, "/dashboard/events/" + encodeURIComponent(ev.event_id));
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
      received += 1;
      count.textContent = String(received);
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.getElementById("tail");
    if (table && window.EventSource) startTail(table);
  });
})();
