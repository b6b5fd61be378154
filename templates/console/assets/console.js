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
// A form with data-progress (the import) goes up by XMLHttpRequest, so
// the page can show how much of the file has gone: the server imports
// the file as it arrives, so that is how far the import got. The answer
// (the report) then replaces the page. Without script the form posts
// as usual and the page waits.
document.querySelectorAll("form[data-progress]").forEach(function (f) {
  f.addEventListener("submit", function (e) {
    var bar = f.querySelector("progress[data-progress-bar]");
    var status = f.querySelector("[data-busy-status]");
    if (!bar || !window.FormData || !window.XMLHttpRequest) { return; }
    e.preventDefault();
    var root = document.documentElement;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", f.action);
    xhr.upload.addEventListener("progress", function (p) {
      if (!p.lengthComputable) { return; }
      bar.max = p.total;
      bar.value = p.loaded;
      bar.hidden = false;
      root.dataset.uploaded = String(p.loaded);
      root.dataset.uploadTotal = String(p.total);
      if (status) {
        status.textContent = f.dataset.progress.replace("{pct}", String(Math.floor(100 * p.loaded / p.total)));
      }
    });
    xhr.addEventListener("load", function () {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      document.title = doc.title;
      document.body.replaceWith(document.adoptNode(doc.body));
      window.scrollTo(0, 0);
    });
    xhr.addEventListener("error", function () {
      if (status) { status.textContent = f.dataset.failed; }
      f.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
    });
    xhr.send(new FormData(f));
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
