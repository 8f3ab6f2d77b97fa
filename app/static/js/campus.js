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

  // After a swap, put focus on the first invalid field, or else on the swapped region, so
  // keyboard and screen-reader users land where the change happened.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target || !document.body.contains(target)) return;
    var invalid = target.querySelector('[aria-invalid="true"]');
    if (invalid) {
      invalid.focus();
    }
  });
})();
