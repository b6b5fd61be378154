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
