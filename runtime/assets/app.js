// tasktrail dashboard: live updates without inline script.
//
// The page's <body> says where the event stream is (data-events) and how
// often to poll when the stream is unavailable (data-poll-ms). Every
// element with data-run="KEY" and data-field="FIELD" shows that field of
// that run; a `run` event updates them in place. The pause button stops and
// resumes the updates.
(function () {
  "use strict";
  var body = document.body;
  var eventsUrl = body.getAttribute("data-events");
  var apiBase = body.getAttribute("data-api");
  var pollMs = parseInt(body.getAttribute("data-poll-ms") || "5000", 10);
  var paused = false;
  var source = null;
  var pollTimer = null;

  function show(run) {
    var key = run.__key;
    var cells = document.querySelectorAll('[data-run="' + CSS.escape(key) + '"][data-field]');
    cells.forEach(function (cell) {
      var field = cell.getAttribute("data-field");
      if (!(field in run)) return;
      var value = run[field];
      var text = value === null || value === undefined ? "" : String(value);
      if (cell.getAttribute("data-kind") === "progress" && value !== null) {
        text = Math.round(Number(value)) + "%";
        var bar = cell.querySelector("progress");
        if (bar) bar.value = Number(value);
      }
      if (cell.getAttribute("data-kind") === "status") {
        cell.className = "status status-" + text;
      }
      var label = cell.querySelector(".value") || cell;
      if (label.textContent !== text) label.textContent = text;
    });
  }

  function receive(data) {
    var run;
    try { run = JSON.parse(data); } catch (e) { return; }
    var keyField = body.getAttribute("data-key-field");
    run.__key = String(run[keyField]);
    show(run);
  }

  function poll() {
    if (paused || !apiBase) return;
    var keys = {};
    document.querySelectorAll("[data-run]").forEach(function (el) {
      keys[el.getAttribute("data-run")] = true;
    });
    Object.keys(keys).forEach(function (key) {
      fetch(apiBase + "/runs/" + encodeURIComponent(key), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) { if (text) receive(text); })
        .catch(function () {});
    });
  }

  function startPolling() {
    if (pollTimer === null) pollTimer = window.setInterval(poll, pollMs);
  }

  function stopPolling() {
    if (pollTimer !== null) { window.clearInterval(pollTimer); pollTimer = null; }
  }

  function connect() {
    if (!eventsUrl || !window.EventSource) { startPolling(); return; }
    source = new EventSource(eventsUrl);
    source.addEventListener("run", function (e) { if (!paused) receive(e.data); });
    source.addEventListener("open", stopPolling);
    source.addEventListener("error", function () {
      // The browser retries by itself (with Last-Event-ID); poll meanwhile.
      startPolling();
    });
  }

  var toggle = document.getElementById("live-toggle");
  if (toggle) {
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      if (!paused) poll();
    });
  }
  connect();
})();
