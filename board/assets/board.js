// errand board: confirmations for actions, and the live views (polling JSON
// with ETags; a 304 costs the server one read and sends nothing).
(function () {
  "use strict";

  var body = document.body;
  var base = body.dataset.base || "";
  var live = document.getElementById("live");

  // A notice is shown once: reloads (live pages reload) drop it.
  if (window.history && window.location.search.indexOf("notice=") !== -1) {
    var params = new URLSearchParams(window.location.search);
    params.delete("notice");
    params.delete("n");
    var rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : "") + window.location.hash);
  }

  // Every action form asks first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.dataset ? form.dataset.confirm : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function setLive(ok) {
    if (!live) return;
    live.classList.toggle("on", ok);
    live.classList.toggle("off", !ok);
    live.textContent = ok ? "live" : "offline";
  }

  // Polls `url` every `every` ms; calls `onData` with each new answer.
  function poll(url, etag, every, onData) {
    function tick() {
      var headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      fetch(url, { headers: headers, cache: "no-store", credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 304) return null;
          if (!response.ok) throw new Error("HTTP " + response.status);
          etag = response.headers.get("ETag");
          return response.json();
        })
        .then(function (data) {
          setLive(true);
          if (data) onData(data);
        })
        .catch(function () {
          setLive(false);
        })
        .then(function () {
          if (!document.hidden) {
            window.setTimeout(tick, every);
          } else {
            document.addEventListener("visibilitychange", function again() {
              document.removeEventListener("visibilitychange", again);
              tick();
            });
          }
        });
    }
    window.setTimeout(tick, every);
  }

  var numberFormat = new Intl.NumberFormat("en-US");
  function fmt(n) {
    return numberFormat.format(n).replace(/,/g, "\u202F");
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        node.setAttribute(k, attrs[k]);
      });
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function ago(ms) {
    var d = Date.now() - ms;
    var s = Math.round(Math.abs(d) / 1000);
    var t = s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " min" : Math.floor(s / 3600) + " h";
    if (s < 1) return "now";
    return d >= 0 ? t + " ago" : "in " + t;
  }

  var STATES = ["pending", "running", "retry", "done", "dead", "cancelled"];

  function updateOverview(data) {
    var rows = document.querySelectorAll("tr[data-queue]");
    var shown = {};
    var reload = rows.length !== data.queues.length;
    var maxDepth = 1;
    data.queues.forEach(function (q) {
      maxDepth = Math.max(maxDepth, q.pending + q.retry);
    });
    rows.forEach(function (row) {
      shown[row.dataset.queue] = row;
    });
    data.queues.forEach(function (q) {
      var row = shown[q.queue];
      if (!row) {
        reload = true;
        return;
      }
      if (row.classList.contains("paused") !== q.paused) reload = true;
      STATES.forEach(function (state) {
        var cell = row.querySelector('[data-k="' + state + '"]');
        if (cell) {
          cell.textContent = fmt(q[state]);
          cell.classList.toggle("zero", q[state] === 0);
        }
      });
      var depth = q.pending + q.retry;
      var depthCell = row.querySelector('[data-k="depth"]');
      if (depthCell) depthCell.textContent = fmt(depth);
      var bar = row.querySelector('[data-k="depth-bar"]');
      if (bar) bar.setAttribute("width", String(Math.round((depth / maxDepth) * 100)));
    });
    if (reload) {
      window.location.reload();
      return;
    }
    STATES.forEach(function (state) {
      var total = document.querySelector('[data-total="' + state + '"]');
      if (total) total.textContent = fmt(data.totals[state]);
    });
    var workers = document.querySelector('[data-total="workers"]');
    if (workers) workers.textContent = fmt(data.workers);

    var tbody = document.getElementById("running");
    if (!tbody) return;
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (data.running.length === 0) {
      var empty = el("tr", { class: "empty-row" });
      empty.appendChild(el("td", { colspan: "7" }, "Nothing is running."));
      tbody.appendChild(empty);
    }
    data.running.forEach(function (t) {
      var tr = el("tr");
      var idCell = el("td");
      idCell.appendChild(el("a", { href: base + "/tasks/" + Number(t.id) }, "#" + t.id));
      tr.appendChild(idCell);
      tr.appendChild(el("td", null, t.job));
      tr.appendChild(el("td", null, t.queue));
      tr.appendChild(el("td", { class: "mono" }, t.worker || ""));
      tr.appendChild(el("td", null, t.attempt + "/" + t.max_attempts));
      var progress = el("td", { class: "progress-cell" });
      if (t.progress) {
        progress.appendChild(el("progress", { max: "100", value: String(t.progress.percent) }));
        progress.appendChild(document.createTextNode(" "));
        progress.appendChild(el("span", { class: "pct" }, t.progress.percent + "%"));
        progress.appendChild(document.createTextNode(" "));
        progress.appendChild(el("span", { class: "muted" }, t.progress.message));
      }
      tr.appendChild(progress);
      tr.appendChild(el("td", null, ago(t.run_at)));
      tbody.appendChild(tr);
    });
  }

  function updateTask(data) {
    if (data.state !== body.dataset.state) {
      window.location.reload();
      return;
    }
    var bar = document.getElementById("progress");
    if (data.progress && !bar) {
      window.location.reload();
      return;
    }
    if (bar && data.progress) {
      bar.value = data.progress.percent;
      document.getElementById("progress-pct").textContent = data.progress.percent + "%";
      document.getElementById("progress-msg").textContent = data.progress.message;
    }
    var attempt = document.getElementById("attempt");
    if (attempt) attempt.textContent = data.attempt + " of " + data.max_attempts;
  }

  var kind = body.dataset.live;
  if (kind && body.dataset.poll) {
    var handlers = {
      overview: updateOverview,
      task: updateTask,
      run: function () {
        window.location.reload();
      },
    };
    poll(body.dataset.poll, body.dataset.etag, 2000, handlers[kind] || function () {});
  }

  var charts = document.getElementById("charts");
  if (charts && charts.dataset.poll) {
    poll(charts.dataset.poll, null, 5000, function (data) {
      // The charts are SVG the server drew from numbers it sampled.
      charts.innerHTML = data.html;
      var rate = document.getElementById("rate");
      if (rate) rate.textContent = data.rate === null ? "–" : data.rate.toFixed(data.rate >= 100 ? 0 : 1);
    });
  }
})();
