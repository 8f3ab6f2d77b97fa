// Campus's own script: the CSRF header on every htmx request, and focus after swaps.
// Loaded with `defer`, after htmx; no inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // Uploads: htmx reports the bytes sent; the form's <progress> shows them.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var progress = event.target.querySelector("[data-upload-progress]");
    if (!progress || !event.detail.lengthComputable) return;
    progress.hidden = false;
    progress.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });

  // After a swap, focus the first invalid field, or else the part marked to take focus (a
  // heading with tabindex="-1"), so keyboard and screen-reader users land where the change
  // happened. Messages are announced by the #flashes live region.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (target && !document.body.contains(target) && target.id) {
      target = document.getElementById(target.id); // an outerHTML swap replaced it
    }
    if (!target) return;
    var landing =
      target.querySelector('[aria-invalid="true"]') ||
      target.querySelector("[data-focus-after-swap]");
    if (landing) landing.focus();
  });
})();
