package app

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"optin/internal/browsertest"
	"optin/internal/ledger"
)

var verifyLinkRE = regexp.MustCompile(`href="(/ledger/verify\?locale=[a-z]+)"`)

// verdict is what the receipt checker page showed.
type verdict struct {
	ok     string // "true" or "false"
	failed string // the id of the first check that failed
	label  string // that check's line on the page
	text   string // the verdict line
}

// checkReceipt opens the checker at pageURL, picks the receipt file and,
// when keyFile is set, the key file as a person does, presses Check and
// reads the verdict.
func (ct *consoleTab) checkReceipt(pageURL, receiptFile, keyFile string) verdict {
	ct.t.Helper()
	ct.do("open the checker", chromedp.Navigate(pageURL))
	ct.waitEval("checker loaded", `document.readyState === "complete" && !document.querySelector("#verify button").disabled ? "ready" : ""`, "ready")
	if keyFile != "" {
		want, err := os.ReadFile(keyFile)
		if err != nil {
			ct.t.Fatal(err)
		}
		ct.do("pick the key file", chromedp.SetUploadFiles(chromedp.CSS("#key-file"), []string{keyFile}))
		js, _ := json.Marshal(string(want))
		ct.waitEval("key read", `document.getElementById("key").value === `+string(js)+` ? "read" : ""`, "read")
	}
	ct.do("pick the receipt", chromedp.SetUploadFiles(chromedp.CSS("#receipt-file"), []string{receiptFile}))
	ct.waitEval("receipt read", `document.getElementById("receipt").value.length > 0 ? "read" : ""`, "read")
	ct.do("press Check", chromedp.Click(chromedp.CSS("#verify button[type=submit]")))
	ct.waitEval("verdict", `document.getElementById("result").hasAttribute("data-ok") ? "shown" : ""`, "shown")
	var v verdict
	out := ct.eval(`(() => { const r = document.getElementById("result"), bad = r.querySelector("li.bad");
		return JSON.stringify([r.dataset.ok, r.dataset.failed, bad ? bad.firstChild.textContent : "", r.querySelector(".verdict").textContent]) })()`)
	var parts []string
	if err := json.Unmarshal([]byte(out), &parts); err != nil || len(parts) != 4 {
		ct.t.Fatalf("reading the verdict: %v %s", err, out)
	}
	v.ok, v.failed, v.label, v.text = parts[0], parts[1], parts[2], parts[3]
	return v
}

// writeReceipt writes receipt r as the server does, into dir.
func writeReceipt(t *testing.T, dir, name string, r ledger.Receipt) string {
	t.Helper()
	b, err := json.MarshalIndent(r, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBrowserReceiptChecker: the page after confirming links, besides the
// receipt, to the receipt checker, which runs in Chromium with no request
// to the server (its CSP allows none) and says what it checked. A genuine
// receipt from a real signup and confirmation checks out, in English and
// in Italian; the same receipt with one event's type changed fails the
// named check (the event shown, or, when the forger re-encodes the leaf
// too, its inclusion proof); checked with another key it fails the
// signature; with a tampered proof, the inclusion proof. The page and its
// script saved into a folder check it as well, opened from disk.
// Screenshots of the verdicts go to $OPTIN_ARTIFACTS.
func TestBrowserReceiptChecker(t *testing.T) {
	browsertest.Chromium(t)
	cat := loadCatalog(t)
	s := startService(t, nil)
	if r := s.signupJSON("ann@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	confirm, _ := links(t, parseMail(t, s.waitMails(1)[0].Data).text)
	confirmed := s.do("POST", confirm, "application/x-www-form-urlencoded", "")
	rm, vm := receiptLinkRE.FindStringSubmatch(confirmed.body), verifyLinkRE.FindStringSubmatch(confirmed.body)
	if confirmed.status != http.StatusOK || rm == nil || vm == nil {
		t.Fatalf("page after confirming: got %d, want links to the receipt and its checker:\n%s", confirmed.status, confirmed.body)
	}
	if p := s.do("GET", strings.TrimSuffix(rm[1], "/receipt"), "", ""); !strings.Contains(p.body, `href="`+vm[1]+`"`) {
		t.Errorf("preference page: want a link to the checker %s:\n%s", vm[1], p.body)
	}
	dir := t.TempDir()
	rec := s.do("GET", rm[1], "", "")
	genuine := filepath.Join(dir, "consent-receipt.json")
	if err := os.WriteFile(genuine, []byte(rec.body), 0o600); err != nil {
		t.Fatal(err)
	}
	var r ledger.Receipt
	if err := json.Unmarshal([]byte(rec.body), &r); err != nil || len(r.Events) != 2 {
		t.Fatalf("receipt: %v, %d events, want requested and confirmed", err, len(r.Events))
	}

	page := s.do("GET", html.UnescapeString(vm[1]), "", "")
	if page.status != http.StatusOK || !strings.Contains(page.header.Get("Content-Security-Policy"), "default-src 'none'; script-src 'self'") ||
		!strings.Contains(page.header.Get("Content-Security-Policy"), "form-action 'none'") {
		t.Fatalf("GET %s: got %d, CSP %q, want 200 with a policy allowing its own script and no connection", vm[1], page.status, page.header.Get("Content-Security-Policy"))
	}
	if strings.Contains(page.body, "<script>") {
		t.Error("the checker page has an inline script")
	}

	// The forgeries, each from the genuine receipt.
	shownType := r
	shownType.Events = append([]ledger.ReceiptEvent(nil), r.Events...)
	shownType.Events[0].Event.Type = "confirmed"
	leafType := r
	leafType.Events = append([]ledger.ReceiptEvent(nil), r.Events...)
	leafType.Events[0].Event.Type = "confirmed"
	leafType.Events[0].Leaf = leafType.Events[0].Event.LeafData()
	badProof := r
	badProof.Events = append([]ledger.ReceiptEvent(nil), r.Events...)
	badProof.Events[1].InclusionProof = append(badProof.Events[1].InclusionProof[:0:0], r.Events[1].InclusionProof...)
	badProof.Events[1].InclusionProof[0][0] ^= 1
	other, err := ledger.NewKey([]byte(rand.Text() + rand.Text())[:32])
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(dir, "other.key")
	if err := os.WriteFile(wrongKey, []byte(other.VerifierKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ct := newConsoleTab(t, s)
	pageURL := s.url + html.UnescapeString(vm[1])
	en := cat.For("en")
	cases := []struct {
		name, receipt, key string
		failed             string // "" for a receipt that checks out
	}{
		{"genuine", genuine, "", ""},
		{"type changed in the event shown", writeReceipt(t, dir, "shown.json", shownType), "", "shown"},
		{"type changed in the leaf too", writeReceipt(t, dir, "leaf.json", leafType), "", "inclusion"},
		{"another key", genuine, wrongKey, "signature"},
		{"tampered proof", writeReceipt(t, dir, "proof.json", badProof), "", "inclusion"},
	}
	shots := artifactDir(t) // a screenshot of each verdict, for a person to look at
	for i, c := range cases {
		v := ct.checkReceipt(pageURL, c.receipt, c.key)
		if png, err := chromedp.Run(ct.tab, chromedp.FullScreenshot(100)); err != nil {
			t.Fatal(err)
		} else if err := os.WriteFile(filepath.Join(shots, fmt.Sprintf("receipt-checker-%d.png", i)), png, 0o644); err != nil {
			t.Fatal(err)
		}
		switch {
		case c.failed == "" && (v.ok != "true" || v.failed != ""):
			t.Errorf("%s: got ok=%s, failed %q (%s), want it to check out", c.name, v.ok, v.failed, v.label)
		case c.failed == "" && !strings.HasPrefix(v.text, strings.Split(en.T("verify.ok"), ":")[0]):
			t.Errorf("%s: verdict %q, want %q", c.name, v.text, en.T("verify.ok"))
		case c.failed != "" && (v.ok != "false" || v.failed != c.failed):
			t.Errorf("%s: got ok=%s, failed %q (%s), want the %s check to fail", c.name, v.ok, v.failed, v.label, c.failed)
		case c.failed != "" && !strings.Contains(v.text, strings.TrimPrefix(v.label, "\u2717 ")):
			t.Errorf("%s: verdict %q does not name the failed check %q", c.name, v.text, v.label)
		}
	}
	ct.check("receipt checker")

	it := ct.checkReceipt(s.url+"/ledger/verify?locale=it", genuine, "")
	if want := strings.Split(cat.For("it").T("verify.ok"), ":")[0]; it.ok != "true" || !strings.HasPrefix(it.text, want) {
		t.Errorf("in Italian: got ok=%s, %q, want %q", it.ok, it.text, want)
	}

	// Saved to disk: the page and verify.js in one folder, opened from
	// there, with the key the page was served with.
	saved := t.TempDir()
	if err := os.WriteFile(filepath.Join(saved, "verify.html"), []byte(page.body), 0o600); err != nil {
		t.Fatal(err)
	}
	js := s.do("GET", "/ledger/verify.js", "", "")
	if js.status != http.StatusOK || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET /ledger/verify.js: got %d %s", js.status, js.header.Get("Content-Type"))
	}
	if err := os.WriteFile(filepath.Join(saved, "verify.js"), []byte(js.body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		receipt, failed string
	}{{genuine, ""}, {cases[2].receipt, "inclusion"}} {
		if v := ct.checkReceipt("file://"+filepath.Join(saved, "verify.html"), c.receipt, ""); v.failed != c.failed || (v.ok == "true") != (c.failed == "") {
			t.Errorf("from disk, %s: got ok=%s, failed %q, want failed %q", filepath.Base(c.receipt), v.ok, v.failed, c.failed)
		}
	}
}
