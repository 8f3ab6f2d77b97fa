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

  // The roster's suggestions: a click puts the username in place of the word being typed.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-add-username]");
    if (!button) return;
    var box = document.getElementById("usernames");
    if (!box) return;
    box.value = box.value.replace(/[^\s,;]*$/, button.getAttribute("data-add-username") + ", ");
    var list = button.closest("#student-suggestions");
    if (list) list.innerHTML = "";
    box.focus();
  });

  // A live fragment updates whichever of its parts this page shows (the room list, an open
  // room, the badge); the parts this page does not have are dropped before htmx swaps.
  htmx.defineExtension("live-fragments", {
    transformResponse: function (text, xhr) {
      if (xhr) return text; // an ordinary htmx request: not ours to change
      var template = document.createElement("template");
      template.innerHTML = text;
      Array.prototype.slice.call(template.content.children).forEach(function (part) {
        if (part.id && !document.getElementById(part.id)) part.remove();
        // A message this page already shows (it came live while the tab was resuming).
        part.querySelectorAll("[data-message-id]").forEach(function (message) {
          if (document.getElementById(message.id)) message.remove();
        });
        if (part.matches("[data-room-messages-oob]") && !part.children.length) part.remove();
      });
      return template.innerHTML;
    },
  });

  // The live channel (htmx's ws extension on <body>). After every (re)connect, tell the
  // server the newest message each open room shows; it sends what this tab missed.
  var socket = null;
  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    document.body.setAttribute("data-live", "open");
    var rooms = {};
    document.querySelectorAll("[data-room-messages]").forEach(function (list) {
      var shown = list.querySelectorAll("[data-message-id]");
      var newest = shown.length ? shown[shown.length - 1].getAttribute("data-message-id") : "0";
      rooms[list.getAttribute("data-room-messages")] = Number(newest);
    });
    socket.send(JSON.stringify({ resume: rooms }));
  });
  document.addEventListener("htmx:wsClose", function () {
    socket = null;
    document.body.setAttribute("data-live", "closed");
  });

  // A sent message clears the box; the message itself comes back over the socket. If the
  // server refuses it instead, the text comes back into the box.
  var lastSent = null;
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    if (form && form.matches("[data-room-form]")) {
      var box = form.querySelector("textarea");
      lastSent = box ? { box: box, text: box.value } : null;
      form.reset();
      if (box) box.focus();
    }
  });

  // Enter sends, Shift+Enter starts a new line.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || !box.closest) return;
    var form = box.closest("[data-room-form]");
    if (!form || box.tagName !== "TEXTAREA") return;
    event.preventDefault();
    form.requestSubmit();
  });

  // "… is typing": sent at most every 3 seconds while writing.
  var typingSent = 0;
  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("[data-room-form]");
    if (!form || !socket || Date.now() - typingSent < 3000) return;
    typingSent = Date.now();
    socket.send(JSON.stringify({ room: Number(form.getAttribute("data-room-form")), typing: true }));
  });

  // After each live message: keep the newest message in view, hide "no messages yet", clear
  // a typing line after a few seconds, and count unread messages on the room list.
  var me = document.body.getAttribute("data-user-id");
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var html = new DOMParser().parseFromString(event.detail.message, "text/html");
    var refused = html.getElementById("live-error");
    if (refused && refused.textContent && lastSent && !lastSent.box.value) {
      lastSent.box.value = lastSent.text;
    }
    lastSent = null;
    html.querySelectorAll("[id$='-last'][data-author-id]").forEach(function (last) {
      var unread = document.getElementById(last.id.replace(/-last$/, "-unread"));
      if (!unread || last.getAttribute("data-author-id") === me) return;
      var count = Number(unread.textContent) + 1;
      unread.textContent = String(count);
      unread.setAttribute("data-unread", String(count));
      unread.classList.remove("is-zero");
    });
  });
  // A message that arrived live gets the actions the page offers the viewer for it (the server
  // renders each live message once, for everyone): a copy of the page's template, with this
  // message's id, keeping only what applies (edit: the author; remove: the author or whoever
  // looks after the room; report: everyone else). The server checks each again.
  function addActions(list) {
    var template = document.getElementById("message-actions-template");
    if (!template) return;
    var moderates = template.hasAttribute("data-moderates");
    list.querySelectorAll("[data-message-id]:not([data-removed])").forEach(function (message) {
      if (message.querySelector(".message-actions")) return;
      var id = message.getAttribute("data-message-id");
      var mine = message.getAttribute("data-author-id") === me;
      var actions = template.content.firstElementChild.cloneNode(true);
      actions.querySelectorAll("[data-action-for]").forEach(function (part) {
        var forWhom = part.getAttribute("data-action-for");
        var keep = forWhom === "author" ? mine : forWhom === "others" ? !mine : mine || moderates;
        if (!keep) part.remove();
      });
      actions.querySelectorAll("form").forEach(function (form) {
        var action = form.getAttribute("action");
        form.setAttribute("action", action.replace("/messages/0/", "/messages/" + id + "/"));
      });
      actions.querySelectorAll("[id], label[for]").forEach(function (part) {
        if (part.id) part.id = part.id.replace("-0-", "-" + id + "-");
        if (part.htmlFor) part.htmlFor = part.htmlFor.replace("-0-", "-" + id + "-");
      });
      var body = document.getElementById("message-" + id + "-body");
      var box = actions.querySelector("textarea[name='body']");
      if (box && body) box.value = body.textContent;
      message.appendChild(actions);
    });
  }

  document.addEventListener("htmx:wsAfterMessage", function () {
    document.querySelectorAll("[data-room-messages]").forEach(function (list) {
      addActions(list);
      var empty = document.getElementById(list.id.replace(/-messages$/, "-empty"));
      if (empty && list.querySelector("[data-message-id]")) empty.remove();
      var last = list.lastElementChild;
      if (last && last.getAttribute("data-seen") !== "1") {
        last.setAttribute("data-seen", "1");
        last.scrollIntoView({ block: "nearest" });
      }
    });
    document.querySelectorAll("[data-typing]").forEach(function (line) {
      if (!line.textContent || line.getAttribute("data-clear-at")) return;
      line.setAttribute("data-clear-at", "1");
      setTimeout(function () {
        line.textContent = "";
        line.removeAttribute("data-clear-at");
      }, 4000);
    });
  });
})();
