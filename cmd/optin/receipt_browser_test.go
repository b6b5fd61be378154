package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optin/internal/browsertest"
	"optin/internal/ledger"
)

// TestReceiptCheckerAgreesWithCLI: the browser's receipt checker (GET
// /ledger/verify, saved to disk and opened from there in Chromium) and
// `optin receipt verify` give the same verdict on the same files: a
// genuine receipt, whose personal record holds characters Go's JSON
// escapes, and forgeries of each part a receipt proves, alone and against
// saved heads with and without consistency proofs. Each forgery fails the
// check named.
func TestReceiptCheckerAgreesWithCLI(t *testing.T) {
	browsertest.Chromium(t)
	_, cfg := writeConfig(t)
	base, _ := startApp(t, cfg)
	// A user agent with <, >, &, a quote, a non-ASCII letter and U+2028.
	form := url.Values{"email": {"ann@example.com"}, "topics": {"news"}}
	req, _ := http.NewRequest("POST", base+"/f/newsletter", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Mozilla/5.0 <b>&\"Fröhlich\"\u2028</b>")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	signupHTTP(t, base, "bob@example.com")
	var subs struct{ Items []struct{ ID string } }
	if err := json.Unmarshal(get(t, base+"/api/v1/subscribers?q=ann@example.com"), &subs); err != nil || len(subs.Items) != 1 {
		t.Fatalf("subscriber lookup: %v %+v", err, subs)
	}
	dir := t.TempDir()
	key := save(t, dir, "key.txt", base+"/ledger/key")
	genuine := save(t, dir, "receipt.json", base+"/api/v1/subscribers/"+subs.Items[0].ID+"/receipt")
	signupHTTP(t, base, "cy@example.com")
	late := save(t, dir, "late.head", base+"/ledger/head")
	proof := save(t, dir, "proof.json", base+"/ledger/consistency?from=2&to=3")
	saved := t.TempDir()
	save(t, saved, "verify.html", base+"/ledger/verify")
	save(t, saved, "verify.js", base+"/ledger/verify.js")

	var r ledger.Receipt
	if err := json.Unmarshal(readFile(t, genuine), &r); err != nil || len(r.Events) != 1 || r.Events[0].Personal == nil ||
		!strings.Contains(r.Events[0].Personal.UserAgent, "<b>&") || r.Events[0].Notice == nil || len(r.Events[0].InclusionProof) != 1 {
		t.Fatalf("receipt: %v, want one event with the user agent, the wording and a proof of one hash:\n%s", err, readFile(t, genuine))
	}
	// forge writes a copy of the genuine receipt changed by edit.
	forge := func(name string, edit func(*ledger.Receipt)) string {
		var f ledger.Receipt
		_ = json.Unmarshal(readFile(t, genuine), &f)
		edit(&f)
		b, _ := json.MarshalIndent(f, "", "    ")
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	other, err := ledger.NewKey([]byte(rand.Text() + rand.Text())[:32])
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(dir, "other.key")
	if err := os.WriteFile(otherKey, []byte(other.VerifierKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c ledger.Consistency
	_ = json.Unmarshal(readFile(t, proof), &c)
	c.Proof[0][5] ^= 1
	badProof := filepath.Join(dir, "bad-proof.json")
	b, _ := json.Marshal(c)
	if err := os.WriteFile(badProof, b, 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, receipt, key, head, consistency string
		failed                                string // the check the page names, "" for none
	}{
		{name: "genuine", receipt: genuine},
		{name: "the receipt's own head saved", receipt: genuine, head: genuine},
		{name: "a later head and the consistency proof", receipt: genuine, head: late, consistency: proof},
		{name: "erased: no personal record", receipt: forge("erased.json", func(f *ledger.Receipt) { f.Events[0].Personal = nil })},
		{name: "another key", receipt: genuine, key: otherKey, failed: "signature"},
		{name: "a head for a key", receipt: genuine, key: late, failed: "key"},
		{name: "version", receipt: forge("version.json", func(f *ledger.Receipt) { f.Version = "optin-consent-receipt/2" }), failed: "receipt"},
		{name: "type of the event shown", receipt: forge("shown.json", func(f *ledger.Receipt) { f.Events[0].Event.Type = "confirmed" }), failed: "shown"},
		{name: "type in the leaf too", receipt: forge("leaf.json", func(f *ledger.Receipt) {
			f.Events[0].Event.Type = "confirmed"
			f.Events[0].Leaf = f.Events[0].Event.LeafData()
		}), failed: "inclusion"},
		{name: "a proof hash", receipt: forge("proof-hash.json", func(f *ledger.Receipt) { f.Events[0].InclusionProof[0][0] ^= 1 }), failed: "inclusion"},
		{name: "a proof cut short", receipt: forge("proof-short.json", func(f *ledger.Receipt) { f.Events[0].InclusionProof = nil }), failed: "inclusion"},
		{name: "another person", receipt: forge("person.json", func(f *ledger.Receipt) { f.PIIPrincipalID = "someone-else" }), failed: "person"},
		{name: "the address", receipt: forge("address.json", func(f *ledger.Receipt) { f.Events[0].Personal.Email = "eve@example.com" }), failed: "personal"},
		{name: "the user agent", receipt: forge("agent.json", func(f *ledger.Receipt) { f.Events[0].Personal.UserAgent += " " }), failed: "personal"},
		{name: "the wording", receipt: forge("wording.json", func(f *ledger.Receipt) { f.Events[0].Notice.Text += " and offers" }), failed: "wording"},
		{name: "the head's size", receipt: forge("size.json", func(f *ledger.Receipt) {
			f.TreeHead = strings.Replace(f.TreeHead, "\n2\n", "\n1\n", 1)
		}), failed: "signature"},
		{name: "a later head without the proof", receipt: genuine, head: late, failed: "saved_head"},
		{name: "a later head with a forged proof", receipt: genuine, head: late, consistency: badProof, failed: "saved_head"},
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tab := browsertest.New(t, ctx)
	if _, err := chromedp.Run(tab, chromedp.Navigate("file://"+filepath.Join(saved, "verify.html"))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		keyFile := key
		if tc.key != "" {
			keyFile = tc.key
		}
		args := []string{"receipt", "verify", tc.receipt, "--key", keyFile}
		in := map[string]string{"receipt": string(readFile(t, tc.receipt)), "key": string(readFile(t, keyFile))}
		if tc.head != "" {
			args = append(args, "--head", tc.head)
			in["head"] = string(readFile(t, tc.head))
		}
		if tc.consistency != "" {
			args = append(args, "--consistency", tc.consistency)
			in["consistency"] = string(readFile(t, tc.consistency))
		}
		_, cliErr := runCLI(t, args...)
		js, _ := json.Marshal(in)
		out, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(`optinReceipt.verify(%s).then(v => JSON.stringify(v))`, js), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: the page: %v", tc.name, err)
		}
		var v struct {
			OK     bool
			Failed string
			Checks []struct {
				ID     string
				OK     bool
				Detail string
			}
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%s: verdict %s: %v", tc.name, out, err)
		}
		if v.OK != (cliErr == nil) {
			t.Errorf("%s: the page says ok=%v (failed %q, %+v), optin receipt verify says %v", tc.name, v.OK, v.Failed, v.Checks, cliErr)
		}
		if v.Failed != tc.failed || (tc.failed == "") != v.OK {
			t.Errorf("%s: the page failed %q, want %q (%+v)", tc.name, v.Failed, tc.failed, v.Checks)
		}
	}
}

// readFile returns the contents of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
