// 长辈模式 (larger text and buttons, a simpler layout), remembered per browser. Loaded in
// <head> without defer so the mode applies before the first paint; tiny on purpose.
(function () {
  "use strict";
  var KEY = "bdb-elder";
  var root = document.documentElement;
  var on = false;
  try { on = window.localStorage.getItem(KEY) === "1"; } catch (e) { /* storage blocked */ }

  function apply(value) {
    on = value;
    root.classList.toggle("elder", on);
    var button = document.getElementById("elder-switch");
    if (button) button.setAttribute("aria-pressed", on ? "true" : "false");
  }

  apply(on);
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("elder-switch");
    if (!button) return;
    apply(on);
    button.addEventListener("click", function () {
      apply(!on);
      try { window.localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* kept for this page */ }
    });
  });
})();
