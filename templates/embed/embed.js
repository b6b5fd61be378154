// optin embed.js: the body of function (D), where D is one form's data as
// JSON from optin (see internal/web/embed.go). It renders the form into
// every <div data-optin-form="{form}"> of the page, with optin's
// stylesheet unless the div says data-optin-style="none", and solves the
// proof-of-work challenge of optin's hosted form when the form has one.
// Every string from D goes in with textContent or as an attribute value:
// nothing is ever parsed as HTML. Every piece of text sits in an element
// of its own class, so a site's styles can reach all of it.

var T = D.t;

// SHA-256 (FIPS 180-4) over an array of bytes, returning 8 32-bit words.
var K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
];

function sha256(bytes) {
  var H = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  var bitLen = bytes.length * 8;
  var m = bytes.slice();
  m.push(0x80);
  while (m.length % 64 !== 56) m.push(0);
  m.push(0, 0, 0, 0, (bitLen >>> 24) & 255, (bitLen >>> 16) & 255, (bitLen >>> 8) & 255, bitLen & 255);
  var w = new Array(64);
  for (var i = 0; i < m.length; i += 64) {
    var t;
    for (t = 0; t < 16; t++) {
      w[t] = (m[i + 4 * t] << 24) | (m[i + 4 * t + 1] << 16) | (m[i + 4 * t + 2] << 8) | m[i + 4 * t + 3];
    }
    for (t = 16; t < 64; t++) {
      var x = w[t - 15], y = w[t - 2];
      var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
    for (t = 0; t < 64; t++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    H[0] = (H[0] + a) | 0; H[1] = (H[1] + b) | 0; H[2] = (H[2] + c) | 0; H[3] = (H[3] + d) | 0;
    H[4] = (H[4] + e) | 0; H[5] = (H[5] + f) | 0; H[6] = (H[6] + g) | 0; H[7] = (H[7] + h) | 0;
  }
  return H;
}

// zeroBits counts the leading zero bits of a digest.
function zeroBits(h) {
  for (var i = 0; i < 8; i++) {
    if (h[i] !== 0) return i * 32 + Math.clz32(h[i]);
  }
  return 256;
}

function ascii(s) {
  var out = [];
  for (var i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 255);
  return out;
}

// solve finds a decimal counter n so that SHA-256(challenge + n) starts
// with bits zero bits. It works in slices so the page stays responsive.
function solve(challenge, bits, done) {
  var prefix = ascii(challenge), n = 0;
  function step() {
    for (var i = 0; i < 5000; i++, n++) {
      if (zeroBits(sha256(prefix.concat(ascii(String(n))))) >= bits) {
        done(String(n));
        return;
      }
    }
    setTimeout(step, 0);
  }
  step();
}

// proof fetches a challenge from url and solves it; cb gets the challenge
// and the counter, or nothing when that failed.
function proof(url, cb) {
  fetch(url, { credentials: "omit", cache: "no-store" })
    .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
    .then(function (j) { solve(j.challenge, j.bits, function (n) { cb(j.challenge, n); }); })
    .catch(function () { cb(); });
}

function el(tag, attrs, text) {
  var e = document.createElement(tag);
  for (var k in attrs) {
    if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
  }
  if (text) e.textContent = text;
  return e;
}

// allowed tells whether optin takes signups for the form from this page's
// origin; browsers refuse the form's posts from any other.
// Like optin, it takes two loopback hosts (localhost, 127.0.0.1, [::1])
// with the same scheme and port for one.
var allowed = D.origins.some(function (o) {
  if (o === location.origin) return true;
  var u = new URL(o), loop = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;
  return u.protocol === location.protocol && u.port === location.port && loop.test(u.hostname) && loop.test(location.hostname);
});

// refused tells the site's developer, in the browser console, why the
// form cannot work here (optin logs the refusal too).
function refused() {
  console.error("optin: form \"" + D.form + "\" does not take signups from " + location.origin +
    ": add " + location.origin + " to the form's allowed_origins (it allows " + D.origins.join(", ") + ")");
}

// style adds optin's stylesheet to the page, once.
function style() {
  var links = document.querySelectorAll("link[rel=stylesheet]");
  for (var i = 0; i < links.length; i++) {
    if (links[i].href === D.css) return;
  }
  document.head.appendChild(el("link", { rel: "stylesheet", href: D.css }));
}

// render builds the form into div; n makes its element ids unique.
function render(div, n) {
  var id = "optin-" + D.form.replace(/[^A-Za-z0-9_-]/g, "_") + "-" + n + "-";
  var form = el("form", { "class": "optin-form", lang: D.locale, "accept-charset": "utf-8" });
  form.appendChild(el("p", { "class": "optin-title" }, T.title));

  function field(name, type, label, attrs) {
    var p = el("p", { "class": "optin-field" });
    p.appendChild(el("label", { "for": id + name }, label));
    attrs.type = type; attrs.name = name; attrs.id = id + name;
    var input = el("input", attrs);
    p.appendChild(input);
    form.appendChild(p);
    return input;
  }
  var email = field("email", "email", T.email, { required: "", maxlength: "254", autocomplete: "email" });
  var name = field("name", "text", T.name, { maxlength: "100", autocomplete: "name" });

  var set = el("fieldset", { "class": "optin-topics" });
  set.appendChild(el("legend", {}, D.wording));
  var boxes = [], chosen = [];
  D.topics.forEach(function (t, i) {
    var row = el("div", { "class": "optin-topic" });
    var box = el("input", { type: "checkbox", name: "topics", value: t.id, id: id + "topic-" + i });
    boxes.push(box);
    row.appendChild(box);
    var label = el("label", { "for": id + "topic-" + i });
    label.appendChild(el("span", { "class": "optin-name" }, t.name));
    if (t.description) {
      label.appendChild(el("span", { "class": "optin-description" }, t.description));
    }
    row.appendChild(label);
    set.appendChild(row);
    if (D.channels && D.channels.length) {
      var also = el("div", { "class": "optin-channels", role: "group", "aria-label": T.also_for.replace("%s", t.name) });
      also.appendChild(el("span", { "class": "optin-description" }, T.also));
      D.channels.forEach(function (c) {
        var cid = id + "channel-" + i + "-" + c.id;
        var cb = el("input", { type: "checkbox", name: "channels", value: t.id + ":" + c.id, id: cid });
        chosen.push(cb);
        var cl = el("label", { "for": cid });
        cl.appendChild(cb);
        cl.appendChild(document.createTextNode(" " + c.label));
        also.appendChild(cl);
      });
      set.appendChild(also);
    }
  });
  form.appendChild(set);
  // The phone number and postal address the channels offered need.
  var phone = null, postal = null;
  var asks = function (f) { return (D.channels || []).some(f); };
  if (asks(function (c) { return c.id === "sms" || c.id === "phone"; })) {
    phone = field("phone", "tel", T.phone, { maxlength: "32", autocomplete: "tel", inputmode: "tel", placeholder: T.phone_example });
  }
  if (asks(function (c) { return c.id === "post"; })) {
    var pp = el("p", { "class": "optin-field" });
    pp.appendChild(el("label", { "for": id + "postal_address" }, T.postal));
    postal = el("textarea", { name: "postal_address", id: id + "postal_address", rows: "3", maxlength: "300", autocomplete: "street-address" });
    pp.appendChild(postal);
    form.appendChild(pp);
  }

  // The honeypot: invisible to people and screen readers, filled by bots.
  var hp = el("div", { "class": "optin-hp", "aria-hidden": "true" });
  hp.style.position = "absolute"; hp.style.left = "-10000px";
  hp.style.width = "1px"; hp.style.height = "1px"; hp.style.overflow = "hidden";
  var hpLabel = el("label", {}, T.honeypot);
  var website = el("input", { type: "text", name: "website", tabindex: "-1", autocomplete: "off" });
  hpLabel.appendChild(website);
  hp.appendChild(hpLabel);
  form.appendChild(hp);

  // What is stored and how to withdraw come before the button; the
  // answer appears next to it, in a live region screen readers announce.
  form.appendChild(el("p", { "class": "optin-notice" }, D.notice));
  var privacy = el("p", { "class": "optin-privacy" });
  privacy.appendChild(el("a", { href: D.privacy, target: "_blank", rel: "noopener noreferrer" }, T.privacy));
  form.appendChild(privacy);
  var actions = el("div", { "class": "optin-actions" });
  var button = el("button", { type: "submit" }, T.submit);
  actions.appendChild(button);
  var status = el("p", { "class": "optin-status", role: "status", "aria-live": "polite" });
  actions.appendChild(status);
  form.appendChild(actions);

  function say(msg, isError) {
    status.textContent = msg;
    status.className = isError ? "optin-status optin-error" : "optin-status";
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var topics = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
    if (!topics.length) {
      say(T.no_topic, true);
      return;
    }
    var body = { email: email.value, name: name.value, topics: topics, locale: D.locale, website: website.value,
      channels: chosen.filter(function (b) { return b.checked; }).map(function (b) { return b.value; }) };
    if (phone) body.phone = phone.value;
    if (postal) body.postal_address = postal.value;
    if (location.protocol === "https:" || location.protocol === "http:") {
      body.page = location.origin + location.pathname;
    }
    button.disabled = true;
    function send() {
      fetch(D.action, {
        method: "POST", mode: "cors", credentials: "omit",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body)
      }).then(function (r) {
        return r.json().then(function (j) { return { status: r.status, body: j }; },
          function () { return { status: r.status, body: null }; });
      }).then(function (res) {
        button.disabled = false;
        if (res.status === 202) {
          form.reset();
          say(T.thanks, false);
          return;
        }
        var code = res.body && res.body.error && res.body.error.code;
        say((code && T[code]) || T.invalid, true);
      }, function () {
        button.disabled = false;
        if (!allowed) {
          refused();
          say(T.forbidden, true);
          return;
        }
        say(T.network, true);
      });
    }
    if (D.pow_bits > 0) {
      say(T.working, false);
      proof(D.challenge, function (challenge, n) {
        if (!challenge) {
          button.disabled = false;
          say(T.network, true);
          return;
        }
        body.pow_challenge = challenge;
        body.pow_nonce = n;
        send();
      });
    } else {
      send();
    }
  });

  while (div.firstChild) div.removeChild(div.firstChild);
  div.appendChild(form);
}

// hosted wires optin's own form page: solve the challenge, then post.
function hosted(form) {
  form.addEventListener("submit", function (ev) {
    if (form.elements.pow_nonce.value) return;
    ev.preventDefault();
    var button = form.querySelector("button[type=submit]");
    var status = form.querySelector("[data-optin-status]");
    if (button) button.disabled = true;
    if (status) status.textContent = T.working;
    proof(form.getAttribute("data-optin-pow"), function (challenge, n) {
      if (button) button.disabled = false;
      if (!challenge) {
        if (status) status.textContent = T.network;
        return;
      }
      form.elements.pow_challenge.value = challenge;
      form.elements.pow_nonce.value = n;
      form.submit();
    });
  });
}

function start() {
  var rendered = false;
  var divs = document.querySelectorAll("div[data-optin-form]");
  for (var i = 0; i < divs.length; i++) {
    if (divs[i].getAttribute("data-optin-form") === D.form && !divs[i].getAttribute("data-optin-done")) {
      divs[i].setAttribute("data-optin-done", "1");
      if (divs[i].getAttribute("data-optin-style") !== "none") style();
      render(divs[i], i);
      rendered = true;
    }
  }
  if (rendered && !allowed) refused();
  var forms = document.querySelectorAll("form[data-optin-pow]");
  for (var j = 0; j < forms.length; j++) hosted(forms[j]);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
