// optin console: enhancements only; every page works without this file.
"use strict";
// A print button (the consent receipt) exists only where printing can be
// started from the page.
document.querySelectorAll("button[data-print]").forEach(function (b) {
  b.hidden = false;
  b.addEventListener("click", function () { window.print(); });
});
