// Operator dashboard: polls the JSON endpoints and redraws tables and inline SVG charts.
// No dependencies; served from /static so the page's CSP needs no exceptions.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var DAY_EVERY = 6; // the day chart changes slowly: every 6th poll
  var SVG = "http://www.w3.org/2000/svg";
  var tick = 0;

  function $(id) { return document.getElementById(id); }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 401) { window.location.href = "/ops/signin?next=/ops"; throw new Error("signed out"); }
      if (!r.ok) { throw new Error(url + ": HTTP " + r.status); }
      return r.json();
    });
  }

  function cell(tr, text, cls, attrs) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    Object.keys(attrs || {}).forEach(function (k) { td.setAttribute(k, attrs[k]); });
    tr.appendChild(td);
    return td;
  }

  function fill(tbody, rows, emptyText, cols) {
    tbody.textContent = "";
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = cell(tr, emptyText);
      td.colSpan = cols;
      tbody.appendChild(tr);
    }
    rows.forEach(function (tr) { tbody.appendChild(tr); });
  }

  function drawQueues(data) {
    var rows = data.queues.map(function (q) {
      var tr = document.createElement("tr");
      cell(tr, q.queue);
      ["ready", "delayed", "in_flight", "dead"].forEach(function (f) {
        var td = cell(tr, String(q[f]), "num" + (f === "dead" && q[f] > 0 ? " warn" : ""),
                      { "data-queue": q.queue, "data-field": f });
        if (f === "dead" && q[f] > 0) {
          td.textContent = "";
          var a = document.createElement("a");
          a.href = "/ops/dead-letters?queue=" + encodeURIComponent(q.queue);
          a.textContent = String(q[f]);
          td.appendChild(a);
        }
      });
      return tr;
    });
    fill(document.querySelector("#queues tbody"), rows, data.error || "No queues.", 5);
    var workers = data.workers.map(function (w) {
      var tr = document.createElement("tr");
      cell(tr, w.name || w.id.slice(0, 8), "", { title: w.id });
      cell(tr, w.last_beat_s.toFixed(1) + " s ago", "num");
      cell(tr, String(w.in_flight), "num");
      cell(tr, w.alive ? "alive" : "silent", w.alive ? "" : "warn");
      return tr;
    });
    fill(document.querySelector("#workers tbody"), workers, "No worker has checked in.", 4);
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) { return "never"; }
    return seconds < 120 ? seconds.toFixed(0) + " s ago" : (seconds / 60).toFixed(0) + " min ago";
  }

  function drawScheduler(data) {
    var s = data.scheduler;
    var lead = $("scheduler-leader");
    lead.textContent = s.error ? s.error : (s.leader ? "Active: " + s.leader : "No active scheduler");
    lead.className = s.late ? "warn" : "";
    if (s.late && !s.error) { lead.textContent += " · reminders are not being sent (no due-scan in the last minute)"; }
    var rows = s.jobs.map(function (j) {
      var tr = document.createElement("tr");
      cell(tr, j.job);
      cell(tr, ago(j.age_s), "num", { "data-job": j.job });
      cell(tr, j.result === null || j.result === undefined ? "" : JSON.stringify(j.result));
      return tr;
    });
    fill(document.querySelector("#scheduler tbody"), rows, s.error || "No job has run.", 3);
  }

  function drawWebhooks(data) {
    var w = data.webhooks;
    var counts = $("webhook-counts");
    counts.textContent = w.error ? w.error :
      w.pending + " waiting for a retry · " + w.failed_last_day + " gave up in the last day";
    counts.className = w.failed_last_day > 0 ? "warn" : "";
    var rows = w.recent_failures.map(function (f) {
      var tr = document.createElement("tr");
      cell(tr, f.business);
      cell(tr, f.type, "", { title: f.event_id });
      cell(tr, String(f.attempts), "num");
      cell(tr, f.error);
      return tr;
    });
    fill(document.querySelector("#webhook-failures tbody"), rows, w.error || "No failed deliveries.", 4);
  }

  function drawOutcomes(table, rows, key, columns, error) {
    var head = table.querySelector("thead");
    head.textContent = "";
    var htr = document.createElement("tr");
    [key].concat(columns).forEach(function (c, i) {
      var th = document.createElement("th");
      th.textContent = c;
      if (i) { th.className = "num"; }
      htr.appendChild(th);
    });
    head.appendChild(htr);
    var trs = rows.map(function (row) {
      var tr = document.createElement("tr");
      cell(tr, row[key]);
      columns.forEach(function (c) {
        cell(tr, String(row[c]), "num" + ((c === "failed" || c === "bounced") && row[c] > 0 ? " warn" : ""),
             { "data-row": row[key], "data-field": c });
      });
      return tr;
    });
    fill(table.querySelector("tbody"), trs, error || "No messages in this window.", columns.length + 1);
  }

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function clock(date) { return date.toISOString().slice(11, 16); }
  function day(date) { return date.toISOString().slice(5, 10); }

  function drawChart(svg, data) {
    var W = 600, H = 180, L = 34, R = 8, T = 10, B = 22;
    var names = ["sent", "delivered", "failed"];
    var n = data.series.sent.length;
    var max = 1;
    names.forEach(function (s) { data.series[s].forEach(function (v) { if (v > max) { max = v; } }); });
    var x = function (i) { return L + (W - L - R) * (n > 1 ? i / (n - 1) : 0); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    svg.textContent = "";
    svg.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, "class": "axis" }));
    svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, "class": "axis" }));
    svg.appendChild(el("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, String(max)));
    svg.appendChild(el("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
    var start = new Date(data.start);
    var long = n * data.bucket_s >= 86400;
    svg.appendChild(el("text", { x: L, y: H - 6 }, (long ? day(start) + " " : "") + clock(start) + " UTC"));
    svg.appendChild(el("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "now"));
    var area = "M" + x(0) + "," + y(0);
    data.series.sent.forEach(function (v, i) { area += " L" + x(i) + "," + y(v); });
    area += " L" + x(n - 1) + "," + y(0) + " Z";
    svg.appendChild(el("path", { d: area, "class": "area" }));
    names.forEach(function (s) {
      var pts = data.series[s].map(function (v, i) { return x(i).toFixed(1) + "," + y(v).toFixed(1); }).join(" ");
      svg.appendChild(el("polyline", { points: pts, "class": s, "data-series": s }));
    });
  }

  function totals(span, data) {
    span.textContent = "· " + data.totals.sent + " sent, " + data.totals.delivered + " delivered, " +
      data.totals.failed + " failed";
  }

  function problem(err) {
    var p = $("problem");
    p.hidden = !err;
    p.textContent = err ? String(err.message || err) : "";
  }

  function poll() {
    var window_ = $("window").value;
    var jobs = [
      getJSON("/ops/api/overview?window=" + encodeURIComponent(window_)).then(function (data) {
        drawQueues(data);
        drawScheduler(data);
        drawWebhooks(data);
        drawOutcomes($("by-channel"), data.outcomes.channels, "channel", data.outcomes.columns, data.outcomes.error);
        drawOutcomes($("by-business"), data.outcomes.businesses, "business", data.outcomes.columns,
                     data.outcomes.error);
      }),
      getJSON("/ops/api/throughput?window=hour").then(function (data) {
        drawChart($("chart-hour"), data);
        totals($("hour-totals"), data);
      })
    ];
    if (tick % DAY_EVERY === 0) {
      jobs.push(getJSON("/ops/api/throughput?window=day").then(function (data) {
        drawChart($("chart-day"), data);
        totals($("day-totals"), data);
      }));
    }
    tick += 1;
    Promise.all(jobs).then(function () {
      problem(null);
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString() +
        " · refreshes every " + POLL_MS / 1000 + " s";
      document.body.setAttribute("data-polls", String(tick));
    }).catch(problem).then(function () { window.setTimeout(poll, POLL_MS); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.body.getAttribute("data-page") !== "overview") { return; }
    $("window").addEventListener("change", function () { tick = 0; });
    poll();
  });
})();
