// tasktrail dashboard: the colour theme, applied before the first paint.
//
// Loaded without `defer` in <head>, so it runs before the body is parsed:
// the stored choice ("light" or "dark") becomes <html data-theme="…">;
// without one ("auto") the stylesheet follows prefers-color-scheme. The
// header's #theme-toggle button cycles auto -> light -> dark -> auto and
// remembers the choice in localStorage (per browser, for every dashboard of
// the origin).
(function () {
  "use strict";
  var KEY = "tasktrail-theme";
  var ORDER = ["auto", "light", "dark"];
  var root = document.documentElement;

  function stored() {
    var value = null;
    try { value = window.localStorage.getItem(KEY); } catch (e) { value = null; }
    return value === "light" || value === "dark" ? value : "auto";
  }

  function apply(theme) {
    if (theme === "auto") root.removeAttribute("data-theme");
    else root.setAttribute("data-theme", theme);
  }

  function label(button, theme) {
    var next = ORDER[(ORDER.indexOf(theme) + 1) % ORDER.length];
    button.textContent = "Theme: " + theme;
    button.setAttribute("data-theme-choice", theme);
    button.setAttribute("title", "Colour theme: " + theme + " (click for " + next + ")");
  }

  var current = stored();
  apply(current);

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    // Another tab of the dashboard changed the theme: follow it.
    window.addEventListener("storage", function (e) {
      if (e.key !== KEY && e.key !== null) return;
      current = stored();
      apply(current);
      if (button) label(button, current);
    });
    if (!button) return;
    label(button, current);
    button.addEventListener("click", function () {
      var theme = ORDER[(ORDER.indexOf(current) + 1) % ORDER.length];
      current = theme;
      try {
        if (theme === "auto") window.localStorage.removeItem(KEY);
        else window.localStorage.setItem(KEY, theme);
      } catch (e) { /* storage refused: the choice lasts for this page */ }
      apply(theme);
      label(button, theme);
    });
  });
})();
