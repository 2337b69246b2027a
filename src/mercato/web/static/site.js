// Small enhancements; everything works without them.
(function () {
  "use strict";
  // Close an open menu when clicking elsewhere or pressing Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details.menu[open]").forEach(function (menu) { menu.removeAttribute("open"); });
    }
  });
  // <form data-confirm="Sure?">: ask before sending.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  // Select menus marked data-autosubmit send their form when changed (the button stays for no-JS).
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) { event.target.form.requestSubmit(); }
  });
  // [data-live="/live/{subject}"]: the page's live wire (web/live.py). Each event about the
  // subject sends the element htmx's "live" trigger, so it refreshes at once (its hx-trigger
  // keeps a slow poll as the safety net). One EventSource per wire, closed once no element
  // on the page asks for it (the subject reached its end).
  var wires = {};
  function connectWires() {
    var wanted = {};
    document.querySelectorAll("[data-live]").forEach(function (el) { wanted[el.getAttribute("data-live")] = true; });
    Object.keys(wires).forEach(function (url) {
      if (!wanted[url]) { wires[url].close(); delete wires[url]; }
    });
    if (!window.EventSource || !window.htmx) { return; }
    Object.keys(wanted).forEach(function (url) {
      if (wires[url]) { return; }
      var source = new EventSource(url);
      var refresh = function () {
        var el = document.querySelector('[data-live="' + url + '"]');
        if (el) { window.htmx.trigger(el, "live"); }
      };
      source.addEventListener("ready", refresh);  // a change between drawing the page and subscribing
      source.addEventListener("changed", refresh);
      wires[url] = source;
    });
  }
  document.addEventListener("DOMContentLoaded", connectWires);
  document.addEventListener("htmx:load", connectWires);
})();
