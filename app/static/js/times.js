// Times in the viewer's zone (DESIGN.md). Pages come with their times already written in the
// zone of the person's profile; live chat fragments are rendered once for every member, in
// UTC and marked `data-localize`, and this writes them in the zone named on <body>. On the
// registration page it presets the time zone to the browser's. No inline script (the CSP).
(function () {
  "use strict";

  var STYLES = {
    date: { day: "numeric", month: "long", year: "numeric" },
    datetime: {
      day: "numeric", month: "long", year: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short",
    },
    message_time: { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
  };

  function zone() {
    return document.body.getAttribute("data-time-zone") || "UTC";
  }

  function localize(root) {
    (root || document).querySelectorAll("time[data-localize]").forEach(function (time) {
      var options = STYLES[time.getAttribute("data-localize")];
      var moment = new Date(time.getAttribute("datetime"));
      if (!options || isNaN(moment)) return;
      try {
        var format = new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: zone() }, options));
        time.textContent = format.format(moment).replace(" at ", ", ");
        time.removeAttribute("data-localize");
      } catch (error) {
        // An unknown zone in this browser: the UTC text stays.
      }
    });
  }

  // The browser's own zone preselected on the registration form, when the list has it.
  function presetZone() {
    var select = document.querySelector("form[data-preset-zone] select[name='timezone']");
    if (!select) return;
    var browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (browser && select.querySelector('option[value="' + CSS.escape(browser) + '"]')) {
      select.value = browser;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    presetZone();
    localize(document);
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    localize(document);
  });
  document.addEventListener("htmx:load", function (event) {
    localize(event.target);
  });
})();
