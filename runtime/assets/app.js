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

  // Every stream the page opens is closed when the page is left, so that a
  // page kept in the back/forward cache holds no connection (browsers
  // allow only six per server over HTTP/1.1); a page restored from that
  // cache reloads, fresh.
  var opened = [];
  function openStream(url) {
    var stream = new EventSource(url);
    opened.push(stream);
    return stream;
  }
  window.addEventListener("pagehide", function () {
    opened.forEach(function (stream) { stream.close(); });
    opened = [];
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) window.location.reload();
  });

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
        cell.className = (cell.classList.contains("badge") ? "badge " : "") + "status status-" + text;
        showActions(key, text);
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
    source = openStream(eventsUrl);
    source.addEventListener("run", function (e) { if (!paused) receive(e.data); });
    source.addEventListener("open", stopPolling);
    source.addEventListener("error", function () {
      // The browser retries by itself (with Last-Event-ID); poll meanwhile.
      startPolling();
    });
  }

  var ENDED = ["success", "failed", "cancelled", "interrupted"];

  // A run page's buttons follow its status: cancel while it runs, retry and
  // delete once it has ended.
  function showActions(key, status) {
    var ended = ENDED.indexOf(status) >= 0;
    document.querySelectorAll("[data-actions-for]").forEach(function (box) {
      if (box.getAttribute("data-actions-for") !== key) return;
      box.querySelectorAll("[data-when]").forEach(function (button) {
        button.hidden = (button.getAttribute("data-when") === "ended") !== ended;
      });
    });
  }

  // Row selection on the runs list.
  var pageBox = document.getElementById("select-page");
  var bulk = document.getElementById("bulk");
  function rowBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll('input[type="checkbox"][form="bulk"]'));
  }
  function updateSelection() {
    if (!bulk) return;
    var boxes = rowBoxes();
    var n = boxes.filter(function (b) { return b.checked; }).length;
    var counter = bulk.querySelector(".selected-count");
    if (counter) counter.textContent = n + " selected";
    if (pageBox) {
      pageBox.checked = n > 0 && n === boxes.length;
      pageBox.indeterminate = n > 0 && n < boxes.length;
    }
    var scope = bulk.querySelector('select[name="scope"]');
    var needsSelection = scope && scope.value === "selected";
    bulk.querySelectorAll('button[name="action"]').forEach(function (b) {
      b.disabled = needsSelection && n === 0;
    });
  }
  if (pageBox) {
    pageBox.addEventListener("change", function () {
      rowBoxes().forEach(function (b) { b.checked = pageBox.checked; });
      updateSelection();
    });
  }
  if (bulk) {
    document.addEventListener("change", function (e) {
      var t = e.target;
      if (t && (t.getAttribute("form") === "bulk" || t.name === "scope")) updateSelection();
    });
    updateSelection();
  }

  // Results of actions: rows of deleted runs leave the list; "Back" on a
  // confirmation clears it.
  document.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail && e.detail.target;
    if (!target) return;
    target.querySelectorAll("[data-removed]").forEach(function (el) {
      var keys = [];
      try { keys = JSON.parse(el.getAttribute("data-removed")); } catch (err) { keys = []; }
      keys.forEach(function (key) {
        var row = document.querySelector('tr[data-row="' + CSS.escape(key) + '"]');
        if (row) row.remove();
      });
      updateSelection();
    });
  });
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t && t.hasAttribute && t.hasAttribute("data-dismiss")) {
      var flash = document.getElementById("flash");
      if (flash) flash.textContent = "";
    }
  });

  // Live log tails: every table.logs[data-tail] follows its stream, newest
  // line first, built with textContent only.
  function startTail(table) {
    var url = table.getAttribute("data-tail");
    var max = parseInt(table.getAttribute("data-tail-max") || "500", 10);
    var body = table.querySelector("tbody");
    var hasRun = !!table.querySelector("thead th:nth-child(3)") &&
      table.querySelector("thead").textContent.indexOf("Run") >= 0;
    var box = table.parentNode;
    var state = box.querySelector(".tail-state");
    var empty = box.querySelector(".logs-empty");
    if (!url || !window.EventSource || !body) return;
    var tail = openStream(url);
    function cell(row, cls, text) {
      var td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      row.appendChild(td);
      return td;
    }
    tail.addEventListener("log", function (e) {
      if (paused) return;
      var line;
      try { line = JSON.parse(e.data); } catch (err) { return; }
      if (body.querySelector('tr[data-line="' + CSS.escape(String(line.id)) + '"]')) return;
      var row = document.createElement("tr");
      row.className = "level-" + line.level;
      row.setAttribute("data-line", String(line.id));
      cell(row, "at", line.shown_at || line.at);
      cell(row, "level", line.level);
      if (hasRun) {
        var run = cell(row, "run", "");
        if (line.run_key && line.run_href) {
          var a = document.createElement("a");
          a.href = line.run_href;
          a.textContent = line.run_key;
          run.appendChild(a);
        }
      }
      var message = cell(row, "message", line.message);
      if (line.fields_text) {
        var f = document.createElement("span");
        f.className = "fields";
        f.textContent = line.fields_text;
        message.appendChild(document.createTextNode(" "));
        message.appendChild(f);
      }
      cell(row, "target", line.target);
      body.insertBefore(row, body.firstChild);
      while (body.children.length > max) body.removeChild(body.lastChild);
      if (empty) empty.hidden = true;
    });
    tail.addEventListener("open", function () { if (state) state.textContent = paused ? "Paused" : "Live"; });
    tail.addEventListener("error", function () { if (state) state.textContent = "Reconnecting…"; });
    var reset = box.querySelector("[data-tail-reset]");
    if (reset) {
      reset.addEventListener("click", function () {
        body.textContent = "";
        if (empty) empty.hidden = false;
      });
    }
  }
  document.querySelectorAll("table.logs[data-tail]").forEach(startTail);

  var toggle = document.getElementById("live-toggle");
  if (toggle) {
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      document.querySelectorAll(".tail-state").forEach(function (el) {
        el.textContent = paused ? "Paused" : "Live";
      });
      if (!paused) poll();
    });
  }
  // The list's time preset: the from / to inputs only for "from – to".
  document.querySelectorAll("select.time-preset").forEach(function (preset) {
    var custom = preset.form && preset.form.querySelector(".time-custom");
    if (!custom) return;
    function sync() { custom.hidden = preset.value !== "custom"; }
    preset.addEventListener("change", sync);
    sync();
  });
  connect();
})();

// Keyboard shortcuts (the help dialog, #shortcuts in base.html, lists
// them): "/" search, "j" / "k" select the next / previous run of a list,
// Enter opens it, "g o" / "g r" / "g l" go to the overview / runs / logs,
// "?" shows the help, Esc closes it or clears the selection. None fires
// while typing in a field or with Ctrl, Alt or Meta held.
(function () {
  "use strict";
  var api = document.body.getAttribute("data-api") || "";
  var prefix = api.replace(/\/api$/, "");
  var help = document.getElementById("shortcuts");
  var pendingG = 0;

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function searchBox() {
    return document.querySelector('form.filters input[type="search"]');
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("table.runs tbody tr[data-row]"))
      .filter(function (row) { return row.getClientRects().length > 0; });
  }

  function select(row) {
    document.querySelectorAll("table.runs tr.selected").forEach(function (r) {
      r.classList.remove("selected");
      r.removeAttribute("aria-selected");
    });
    if (!row) return;
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    if (!row.hasAttribute("tabindex")) row.setAttribute("tabindex", "-1");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var list = rows();
    if (list.length === 0) return;
    var at = list.indexOf(document.querySelector("table.runs tr.selected"));
    var next = at < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + step));
    select(list[next]);
  }

  function openHelp() {
    if (help && !help.open && help.showModal) help.showModal();
  }

  var opener = document.getElementById("shortcuts-open");
  if (opener) opener.addEventListener("click", openHelp);

  // A search asked for on a page without one lands on the list, focused.
  if (window.location.hash === "#search") {
    var box = searchBox();
    if (box) box.focus();
  }

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(e.target) || (help && help.open)) return;
    var key = e.key;
    if (pendingG && Date.now() - pendingG < 1500) {
      pendingG = 0;
      var to = { o: "/", r: "/runs", l: "/logs" }[key];
      if (to && (to !== "/logs" || document.querySelector('header.top nav a[href$="/logs"]'))) {
        e.preventDefault();
        window.location.href = prefix + to;
        return;
      }
    }
    pendingG = 0;
    var tag = e.target && e.target.tagName ? e.target.tagName.toLowerCase() : "";
    switch (key) {
      case "/": {
        e.preventDefault();
        var box = searchBox();
        if (box) { box.focus(); box.select(); } else window.location.href = prefix + "/runs#search";
        break;
      }
      case "j": e.preventDefault(); move(1); break;
      case "k": e.preventDefault(); move(-1); break;
      case "Enter": {
        // Enter on a link or a button does what it always does.
        if (tag === "a" || tag === "button") return;
        var row = document.querySelector("table.runs tr.selected");
        var link = row && row.querySelector("a[href]");
        if (link) { e.preventDefault(); window.location.href = link.href; }
        break;
      }
      case "?": e.preventDefault(); openHelp(); break;
      case "g": pendingG = Date.now(); break;
      case "Escape": {
        select(null);
        var focused = document.activeElement;
        if (focused && focused.tagName && focused.tagName.toLowerCase() === "tr") focused.blur();
        break;
      }
      default: break;
    }
  });
})();
