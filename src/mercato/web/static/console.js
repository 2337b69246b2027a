// Console enhancements; every form also works without them.
(function () {
  "use strict";
  // <form data-upload>: send the file with XMLHttpRequest so the <progress> shows real bytes sent,
  // then follow the page's answer (a redirect to the version, or the form again with the reason).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-upload]") || !window.XMLHttpRequest || !window.FormData) { return; }
    event.preventDefault();
    var bar = form.querySelector("progress");
    var status = form.querySelector("[data-upload-status]");
    var button = form.querySelector("button[type=submit]");
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    var token = form.querySelector("input[name=csrf_token]");
    if (token) { request.setRequestHeader("X-CSRF-Token", token.value); }
    if (bar) { bar.hidden = false; bar.value = 0; }
    if (button) { button.disabled = true; }
    request.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) { return; }
      var percent = Math.round(100 * e.loaded / e.total);
      if (bar) { bar.value = percent; }
      if (status) { status.textContent = "Uploading: " + percent + " %"; }
    });
    request.upload.addEventListener("load", function () {
      if (bar) { bar.value = 100; }
      if (status) { status.textContent = "Uploaded; checking the package…"; }
    });
    request.addEventListener("load", function () {
      if (request.responseURL && request.responseURL !== form.action) {
        window.location.assign(request.responseURL);
        return;
      }
      // The form again with the reason beside it: show that page's content in place.
      var page = new DOMParser().parseFromString(request.responseText, "text/html");
      var main = page.querySelector("main");
      if (main) { document.querySelector("main").replaceWith(main); } else if (button) { button.disabled = false; }
    });
    request.addEventListener("error", function () {
      if (status) { status.textContent = "The upload failed: the connection broke. Try again."; }
      if (button) { button.disabled = false; }
    });
    request.send(new FormData(form));
  });
})();
