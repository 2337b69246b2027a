// The buyer's pages: small enhancements; every page works without them.
(function () {
  "use strict";
  // <button data-print>: print the page (receipts).
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.closest && target.closest("[data-print]")) { window.print(); }
    // <button data-copy="#id">: copy the element's text (tokens, commands, licence keys).
    var copy = target && target.closest && target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          copy.textContent = "Copied";
        }, function () { /* the text stays selectable */ });
      }
    }
  });
})();
