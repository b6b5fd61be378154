// optin verify.js: checks a consent receipt (docs/receipts.md) in the
// browser, with WebCrypto (SHA-256, Ed25519) and nothing else: no request
// leaves the page, which may also be opened from a file. It makes the
// checks `optin receipt verify` makes (internal/ledger.VerifyReceipt):
//   - the tree head is a signed note (golang.org/x/mod/sumdb/note) with an
//     Ed25519 signature by one of the keys given, over the note's text;
//   - the head's text is a checkpoint: origin, size, base64 root hash;
//   - each event's leaf is a ledger event, numbered within the tree, about
//     the receipt's person, equal to the event shown; its personal record
//     and wording hash to the digests the event carries; and its inclusion
//     proof leads from SHA-256(0x00 || leaf) to the head's root
//     (RFC 6962 section 2.1.1, run as golang.org/x/mod/sumdb/tlog does);
//   - a saved head, if given, is of the same ledger: the same root at the
//     same size, else a consistency proof between the two (RFC 6962
//     section 2.1.2).
// window.optinReceipt.verify(inputs) returns the verdict; the page's
// strings come from the JSON block #verify-strings, and every string goes
// into the page with textContent.
(function () {
  "use strict";

  var utf8 = new TextEncoder();
  var RECEIPT_VERSION = "optin-consent-receipt/1";

  // Failure is a check that did not pass; detail says why, in English,
  // with the values involved.
  function Failure(detail) { this.detail = detail; }

  // bytesOf decodes strict standard base64, as Go's base64.StdEncoding.
  function bytesOf(s, what) {
    if (typeof s !== "string" || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
      throw new Failure(what + " is not base64");
    }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function hashOf(s, what) {
    var h = bytesOf(s, what);
    if (h.length !== 32) throw new Failure(what + " is not a 32-byte hash");
    return h;
  }

  function concat() {
    var n = 0, i;
    for (i = 0; i < arguments.length; i++) n += arguments[i].length;
    var out = new Uint8Array(n), at = 0;
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], at); at += arguments[i].length; }
    return out;
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function hex(b) {
    return Array.prototype.map.call(b, function (x) { return (x < 16 ? "0" : "") + x.toString(16); }).join("");
  }

  function sha256(b) {
    return crypto.subtle.digest("SHA-256", b).then(function (d) { return new Uint8Array(d); });
  }

  // RFC 6962 section 2.1: a leaf hashes with the prefix 0x00, a node
  // with 0x01.
  function leafHash(leaf) { return sha256(concat(new Uint8Array([0]), leaf)); }
  function nodeHash(l, r) { return sha256(concat(new Uint8Array([1]), l, r)); }

  // maxpow2 is the largest power of two smaller than n (n >= 2).
  function maxpow2(n) {
    var k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }

  // runRecordProof is tlog's: the hash of the subtree [lo, hi) implied by
  // proof p for leaf n with hash h, or null when p has the wrong length.
  async function runRecordProof(p, lo, hi, n, h) {
    if (lo + 1 === hi) return p.length === 0 ? h : null;
    if (p.length === 0) return null;
    var k = maxpow2(hi - lo), last = p[p.length - 1], rest = p.slice(0, -1), th;
    if (n < lo + k) {
      th = await runRecordProof(rest, lo, lo + k, n, h);
      return th && nodeHash(th, last);
    }
    th = await runRecordProof(rest, lo + k, hi, n, h);
    return th && nodeHash(last, th);
  }

  // runTreeProof is tlog's: the hashes of the old tree (n leaves) and of
  // the subtree [lo, hi) implied by consistency proof p, or null.
  async function runTreeProof(p, lo, hi, n, old) {
    if (n === hi) {
      if (lo === 0) return p.length === 0 ? [old, old] : null;
      return p.length === 1 ? [p[0], p[0]] : null;
    }
    if (p.length === 0) return null;
    var k = maxpow2(hi - lo), last = p[p.length - 1], rest = p.slice(0, -1), r;
    if (n <= lo + k) {
      r = await runTreeProof(rest, lo, lo + k, n, old);
      return r && [r[0], await nodeHash(r[1], last)];
    }
    r = await runTreeProof(rest, lo + k, hi, n, old);
    return r && [await nodeHash(last, r[0]), await nodeHash(last, r[1])];
  }

  // validName is note's rule for key and signer names.
  function validName(name) { return name !== "" && !/[\s+]/.test(name); }

  async function keyHash(name, key) {
    var h = await sha256(concat(utf8.encode(name + "\n"), key));
    return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
  }

  // parseKeys reads verifier keys (name+hash+base64 of 0x01 and an
  // Ed25519 public key), one a line, as GET /ledger/key serves them.
  async function parseKeys(text) {
    var keys = [];
    var lines = String(text || "").split("\n");
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i].trim();
      if (line === "" || line.charAt(0) === "#") continue;
      // name+hash+key, where the base64 key may itself hold a +.
      var i1 = line.indexOf("+"), i2 = line.indexOf("+", i1 + 1);
      var parts = i1 < 0 || i2 < 0 ? [] : [line.slice(0, i1), line.slice(i1 + 1, i2), line.slice(i2 + 1)];
      if (parts.length !== 3 || !validName(parts[0]) || !/^[0-9a-fA-F]{8}$/.test(parts[1])) {
        throw new Failure("not a verifier key: " + line);
      }
      var key = bytesOf(parts[2], "the key");
      if (key.length !== 33 || key[0] !== 1) throw new Failure("not an Ed25519 verifier key: " + line);
      var hash = parseInt(parts[1], 16);
      if (hash !== await keyHash(parts[0], key)) throw new Failure("the key's hash does not match its key: " + line);
      var pub;
      try {
        pub = await crypto.subtle.importKey("raw", key.slice(1), { name: "Ed25519" }, false, ["verify"]);
      } catch (e) {
        throw new Failure("unsupported: this browser's WebCrypto has no Ed25519 (" + e.name + ")");
      }
      keys.push({ name: parts[0], hash: hash, pub: pub });
    }
    if (keys.length === 0) throw new Failure("no verifier key given");
    return keys;
  }

  // openNote checks the signed note msg against keys as note.Open does and
  // returns its text: at least one signature must be by a known key, and
  // every signature by a known key must verify.
  async function openNote(msg, keys) {
    var b = utf8.encode(msg);
    if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) throw new Failure("the head has control characters");
    var split = -1;
    for (var i = b.length - 2; i >= 0; i--) if (b[i] === 10 && b[i + 1] === 10) { split = i; break; }
    if (split < 0) throw new Failure("the head is not a signed note");
    var text = b.slice(0, split + 1), sigs = new TextDecoder().decode(b.slice(split + 2));
    if (sigs === "" || sigs.charAt(sigs.length - 1) !== "\n") throw new Failure("the head is not a signed note");
    var lines = sigs.slice(0, -1).split("\n"), verified = 0;
    for (i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (line.indexOf("\u2014 ") !== 0) throw new Failure("the head has a malformed signature line");
      line = line.slice(2);
      var sp = line.indexOf(" ");
      var name = sp < 0 ? line : line.slice(0, sp), sig64 = sp < 0 ? "" : line.slice(sp + 1);
      var sig = sig64 === "" ? new Uint8Array(0) : bytesOf(sig64, "a signature");
      if (!validName(name) || sig.length < 5) throw new Failure("the head has a malformed signature line");
      var hash = ((sig[0] << 24) | (sig[1] << 16) | (sig[2] << 8) | sig[3]) >>> 0;
      var key = keys.find(function (k) { return k.name === name && k.hash === hash; });
      if (!key) continue;
      if (!(await crypto.subtle.verify({ name: "Ed25519" }, key.pub, sig.slice(4), text))) {
        throw new Failure("the signature by " + name + " does not verify: the head was changed after it was signed");
      }
      verified++;
    }
    if (verified === 0) throw new Failure("no signature of the head is by the key given");
    return new TextDecoder().decode(text);
  }

  // parseHead reads a checkpoint: origin, size, base64 root, extensions.
  function parseHead(text) {
    var lines = text.replace(/\n$/, "").split("\n");
    if (lines.length < 3) throw new Failure("want origin, size and root hash lines");
    if (!/^[+-]?[0-9]+$/.test(lines[1]) || Number(lines[1]) < 0) throw new Failure("the size " + lines[1] + " is not a number");
    var head = { origin: lines[0], size: Number(lines[1]), root: hashOf(lines[2], "the root hash"), time: "" };
    lines.slice(3).forEach(function (l) { if (l.indexOf("time ") === 0) head.time = l.slice(5); });
    return head;
  }

  // goString encodes s as Go's encoding/json does: <, >, &, U+2028 and
  // U+2029 escaped, and \b \f \n \r \t short.
  function goString(s) {
    var short = { "\"": "\\\"", "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
    return "\"" + String(s).toWellFormed().replace(/["\\\u0000-\u001f<>&\u2028\u2029]/g, function (c) {
      return short[c] || "\\u" + ("000" + c.charCodeAt(0).toString(16)).slice(-4);
    }) + "\"";
  }

  function str(v) { return typeof v === "string" ? v : ""; }

  // personalDigest is consent.Personal.Digest: the hex SHA-256 of the
  // record's Go JSON encoding (salt always, the rest when not empty).
  async function personalDigest(p) {
    var out = "{\"salt\":" + goString(str(p.salt));
    ["email", "email_hash", "ip", "user_agent", "note"].forEach(function (k) {
      if (str(p[k]) !== "") out += ",\"" + k + "\":" + goString(p[k]);
    });
    return hex(await sha256(utf8.encode(out + "}")));
  }

  // byCodePoint orders strings as Go's encoding/json orders map keys.
  function byCodePoint(a, b) {
    var x = Array.from(a), y = Array.from(b);
    for (var i = 0; i < x.length && i < y.length; i++) {
      var d = x[i].codePointAt(0) - y[i].codePointAt(0);
      if (d !== 0) return d;
    }
    return x.length - y.length;
  }

  // wordingHash is consent.Wording.Hash.
  async function wordingHash(w) {
    if (!Number.isInteger(w.version)) throw new Failure("the wording's version is not a number");
    var topics = "null";
    if (w.topics && typeof w.topics === "object") {
      topics = "{" + Object.keys(w.topics).sort(byCodePoint).map(function (k) {
        return goString(k) + ":" + goString(str(w.topics[k]));
      }).join(",") + "}";
    }
    var out = "{\"form\":" + goString(str(w.form)) + ",\"version\":" + w.version + ",\"locale\":" + goString(str(w.locale)) +
      ",\"text\":" + goString(str(w.text)) + ",\"topics\":" + topics;
    if (str(w.notice) !== "") out += ",\"notice\":" + goString(w.notice);
    return hex(await sha256(utf8.encode(out + "}")));
  }

  // same reports whether two JSON values are equal, whatever the order of
  // their keys.
  function same(a, b) {
    if (a === b) return true;
    if (a === null || b === null || typeof a !== "object" || typeof b !== "object" || Array.isArray(a) !== Array.isArray(b)) return false;
    var ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every(function (k) { return Object.prototype.hasOwnProperty.call(b, k) && same(a[k], b[k]); });
  }

  // headNote returns the signed head in text: a head, or a receipt's.
  function headNote(text) {
    if (text.trim().charAt(0) !== "{") return text;
    var r = JSON.parse(text);
    if (!r || typeof r.tree_head !== "string" || r.tree_head === "") throw new Failure("a receipt without a tree head");
    return r.tree_head;
  }

  // verify checks inputs.receipt (the receipt's JSON text) with the keys
  // in inputs.key; inputs.head is an optional saved head (or receipt) and
  // inputs.consistency an optional consistency proof (JSON). The verdict
  // lists every check made, {id, n (event number, from 1), ok, detail};
  // failed names the first that failed, "" when all passed.
  async function verify(inputs) {
    var v = { ok: false, failed: "", checks: [], events: [], head: null, person: "" };
    function check(id, n, fn) {
      return Promise.resolve().then(fn).then(function (r) {
        v.checks.push({ id: id, n: n, ok: true, detail: "" });
        return r;
      }, function (e) {
        if (!(e instanceof Failure)) e = new Failure(String(e && e.message || e));
        v.checks.push({ id: id, n: n, ok: false, detail: e.detail });
        if (!v.failed) v.failed = id;
        throw e;
      });
    }
    function done() { v.ok = v.failed === "" && v.checks.length > 0; return v; }
    var r, keys, head;
    try {
      r = await check("receipt", 0, function () {
        var x;
        try { x = JSON.parse(inputs.receipt || ""); } catch (e) { throw new Failure("not JSON: " + e.message); }
        if (!x || x.version !== RECEIPT_VERSION) throw new Failure("version " + (x && x.version) + ", want " + RECEIPT_VERSION);
        if (!Array.isArray(x.events || [])) throw new Failure("events is not a list");
        return x;
      });
      v.person = str(r.pii_principal_id);
      keys = await check("key", 0, function () { return parseKeys(inputs.key); });
      var text = await check("signature", 0, function () { return openNote(str(r.tree_head), keys); });
      head = await check("head", 0, function () { return parseHead(text); });
      v.head = { origin: head.origin, size: head.size, time: head.time };
    } catch (e) {
      return done();
    }
    var events = r.events || [];
    for (var i = 0; i < events.length; i++) {
      await checkEvent(check, v, r, head, events[i], i + 1).catch(function () {});
    }
    if (str(inputs.head).trim() !== "") {
      await check("saved_head", 0, async function () {
        var saved = parseHead(await openNote(headNote(inputs.head), keys));
        await consistent(head, saved, str(inputs.consistency));
      }).catch(function () {});
    }
    return done();
  }

  // checkEvent makes the checks of event number n, e, of receipt r.
  async function checkEvent(check, v, r, head, e, n) {
    var leaf, ev;
    await check("leaf", n, function () {
      leaf = bytesOf(e && e.leaf, "the leaf");
      try { ev = JSON.parse(new TextDecoder().decode(leaf)); } catch (x) { throw new Failure("the leaf is not JSON"); }
      if (!ev || typeof ev !== "object" || Array.isArray(ev)) throw new Failure("the leaf is not an event");
    });
    v.events.push({ n: n, seq: ev.seq, time: str(ev.time), type: str(ev.type), topics: Array.isArray(ev.topics) ? ev.topics.join(", ") : "" });
    // One after the other, in the order VerifyReceipt makes them, so the
    // first failure named is the one it reports.
    function soft(id, fn) { return check(id, n, fn).catch(function () {}); }
    await soft("seq", function () {
      if (!Number.isInteger(ev.seq) || ev.seq < 1 || ev.seq > head.size) {
        throw new Failure("seq " + ev.seq + " is not in the tree of " + head.size + " events");
      }
    });
    await soft("person", function () {
      if (str(ev.subscriber) !== str(r.pii_principal_id)) throw new Failure("about " + str(ev.subscriber) + ", not " + str(r.pii_principal_id));
    });
    await soft("shown", function () {
      if (!same(ev, e.event)) throw new Failure("the event shown differs from its leaf");
    });
    if (e.personal != null) {
      await soft("personal", async function () {
        var d = await personalDigest(e.personal);
        if (d !== str(ev.personal_digest)) throw new Failure("the personal record hashes to " + d + ", the event says " + str(ev.personal_digest));
      });
    }
    if (e.notice != null) {
      await soft("wording", async function () {
        var d = await wordingHash(e.notice);
        if (d !== str(ev.wording)) throw new Failure("the wording hashes to " + d + ", the event says " + str(ev.wording));
      });
    }
    await soft("inclusion", async function () {
      if (!Number.isInteger(ev.seq) || ev.seq < 1 || ev.seq > head.size) throw new Failure("no record " + ev.seq + " in the tree");
      if (!Array.isArray(e.inclusion_proof || [])) throw new Failure("the proof is not a list");
      var p = (e.inclusion_proof || []).map(function (h) { return hashOf(h, "a proof hash"); });
      var root = await runRecordProof(p, 0, head.size, ev.seq - 1, await leafHash(leaf));
      if (!root || !equalBytes(root, head.root)) throw new Failure("the proof does not lead to the signed root");
    });
  }

  // consistent checks that heads a (the receipt's) and b (saved) are of
  // one append-only ledger, given a consistency proof's JSON text.
  async function consistent(a, b, proofText) {
    if (a.size === b.size) {
      if (!equalBytes(a.root, b.root)) throw new Failure("the saved head of " + b.size + " events has another root: the ledger shows two histories");
      return;
    }
    var small = a.size < b.size ? a : b, large = a.size < b.size ? b : a;
    if (proofText.trim() === "") {
      throw new Failure("the heads have " + b.size + " and " + a.size + " events: give the consistency proof (GET /ledger/consistency?from=" + small.size + "&to=" + large.size + ")");
    }
    var c;
    try { c = JSON.parse(proofText); } catch (e) { throw new Failure("the consistency proof is not JSON"); }
    if (!c || c.from !== small.size || c.to !== large.size || !Array.isArray(c.proof)) {
      throw new Failure("the consistency proof is not from " + small.size + " to " + large.size);
    }
    var p = c.proof.map(function (h) { return hashOf(h, "a proof hash"); });
    var got = small.size >= 1 ? await runTreeProof(p, 0, large.size, small.size, small.root) : null;
    if (!got || !equalBytes(got[0], small.root) || !equalBytes(got[1], large.root)) {
      throw new Failure("the head of " + large.size + " events does not extend the head of " + small.size);
    }
  }

  window.optinReceipt = { verify: verify };

  // The page, when this script runs in it.
  var form = document.getElementById("verify");
  if (!form) return;
  var T = JSON.parse(document.getElementById("verify-strings").textContent);
  function t(key, args) {
    return String(T[key] || key).replace(/\{(\w+)\}/g, function (m, k) { return args && k in args ? String(args[k]) : m; });
  }
  function el(tag, text, cls) {
    var x = document.createElement(tag);
    if (text !== undefined) x.textContent = text;
    if (cls) x.className = cls;
    return x;
  }

  // Each file input fills the text area it names.
  Array.prototype.forEach.call(form.querySelectorAll("input[type=file][data-into]"), function (input) {
    input.addEventListener("change", function () {
      var area = document.getElementById(input.getAttribute("data-into"));
      if (!input.files || !input.files[0]) return;
      input.files[0].text().then(function (s) { area.value = s; }, function () { area.value = ""; });
    });
  });

  var result = document.getElementById("result");
  // The button stays disabled without this script, so the form is never
  // sent anywhere.
  form.querySelector("button[type=submit]").disabled = false;
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    result.replaceChildren(el("p", t("working")));
    result.removeAttribute("data-ok");
    result.removeAttribute("data-failed");
    verify({
      receipt: form.elements.receipt.value, key: form.elements.key.value,
      head: form.elements.head.value, consistency: form.elements.consistency.value
    }).then(show);
  });

  function show(v) {
    result.replaceChildren();
    result.setAttribute("data-ok", v.ok ? "true" : "false");
    result.setAttribute("data-failed", v.failed);
    if (v.ok) {
      result.appendChild(el("p", t("ok", { events: v.events.length, person: v.person, size: v.head.size, origin: v.head.origin, time: v.head.time }), "verdict ok"));
    } else {
      var first = v.checks.find(function (c) { return !c.ok; });
      result.appendChild(el("p", t("failed", { check: first ? label(first) : t("check.receipt") }), "verdict bad"));
      if (first && first.detail.indexOf("unsupported:") === 0) result.appendChild(el("p", t("unsupported"), "error"));
    }
    result.appendChild(el("h2", t("checks")));
    var list = el("ul", undefined, "checks");
    v.checks.forEach(function (c) {
      var li = el("li", (c.ok ? "\u2713 " : "\u2717 ") + label(c), c.ok ? "ok" : "bad");
      li.setAttribute("data-check", c.id);
      if (!c.ok && c.detail) li.appendChild(el("span", " (" + c.detail + ")", "small"));
      list.appendChild(li);
    });
    result.appendChild(list);
    if (v.events.length > 0) {
      result.appendChild(el("h2", t("events")));
      var table = el("table"), head = el("tr");
      ["col.seq", "col.time", "col.type", "col.topics", "col.proven"].forEach(function (k) { head.appendChild(el("th", t(k))); });
      table.appendChild(head);
      // An event is proven when no check of it, nor of the receipt as a
      // whole, failed.
      var bad = v.checks.filter(function (c) { return !c.ok; });
      v.events.forEach(function (e) {
        var proven = !bad.some(function (c) { return c.n === 0 || c.n === e.n; });
        var tr = el("tr", undefined, proven ? "ok" : "bad");
        [String(e.seq), e.time, e.type, e.topics, proven ? "\u2713" : "\u2717"].forEach(function (s) { tr.appendChild(el("td", s)); });
        table.appendChild(tr);
      });
      result.appendChild(table);
    }
  }

  function label(c) { return t("check." + c.id, { n: c.n }); }
})();
