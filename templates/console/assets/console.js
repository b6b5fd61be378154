// optin console: enhancements only; every page works without this file.
"use strict";
// A print button (the consent receipt) exists only where printing can be
// started from the page.
document.querySelectorAll("button[data-print]").forEach(function (b) {
  b.hidden = false;
  b.addEventListener("click", function () { window.print(); });
});
// A copy button copies the field it names, where the browser lets pages
// write to the clipboard; without it the field can still be selected.
document.querySelectorAll("button[data-copy]").forEach(function (b) {
  var field = document.getElementById(b.dataset.copy);
  if (!field || !navigator.clipboard) { return; }
  b.hidden = false;
  b.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(function () { b.textContent = b.dataset.copied; });
  });
});
// A form that may take long (an import) says so while the browser waits
// for the answer, and cannot be sent twice.
document.querySelectorAll("form[data-busy]").forEach(function (f) {
  f.addEventListener("submit", function () {
    var status = f.querySelector("[data-busy-status]");
    if (status) { status.textContent = f.dataset.busy; }
    f.querySelectorAll("button[type=submit]").forEach(function (b) {
      setTimeout(function () { b.disabled = true; }, 0);
    });
  });
});
// A section with data-refresh (a running campaign's counts) reloads
// itself every that many seconds while the page is shown.
document.querySelectorAll("[data-refresh][id]").forEach(function (el) {
  var every = parseInt(el.dataset.refresh, 10) * 1000;
  function refresh() {
    if (document.hidden) { return; }
    fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) { return; }
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
      if (fresh) { el.replaceChildren.apply(el, Array.from(fresh.childNodes)); }
    });
  }
  if (every > 0) { setInterval(refresh, every); }
});
