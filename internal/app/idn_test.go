package app

import (
	"net/http"
	"net/url"
	"testing"
)

// TestIDNSpellingsOneMailbox: a domain spelled with U-labels or with
// A-labels (xn--) is one mailbox on every way in (signup, import, admin
// suppressions): one subscriber, one suppression hash, one mail.
func TestIDNSpellingsOneMailbox(t *testing.T) {
	s := startService(t, nil)
	if r := s.signupJSON("ann@bücher.example", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: got %d %s", r.status, r.body)
	}
	// On the wire the domain is in A-labels: no SMTPUTF8 needed.
	if got := s.waitMails(1)[0].To; len(got) != 1 || got[0] != "ann@xn--bcher-kva.example" {
		t.Fatalf("confirmation mail to %v, want [ann@xn--bcher-kva.example]", got)
	}
	if r := s.signupJSON("ANN@XN--BCHER-KVA.EXAMPLE", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup with A-labels: got %d %s", r.status, r.body)
	}
	var subs struct{ Items []subscriber }
	s.admin("/subscribers?q="+url.QueryEscape("ann@"), &subs)
	if len(subs.Items) != 1 || subs.Items[0].Email != "ann@bücher.example" {
		t.Fatalf("subscribers after two spellings: got %+v, want one, ann@bücher.example", subs.Items)
	}
	if rep := s.importCSV("email,topics,basis,consented_at,source\nann@xn--bcher-kva.example,news,consent,2024-01-01,shop\n"); rep.Imported != 0 || rep.Updated != 1 {
		t.Errorf("import with A-labels: got %+v, want the existing subscriber updated", rep)
	}

	var sup struct{ Hash string }
	s.adminJSON("POST", "/suppressions", `{"email":"bob@xn--bcher-kva.example"}`, http.StatusCreated, &sup)
	s.adminJSON("POST", "/suppressions", `{"email":"bob@bücher.example"}`, http.StatusOK, nil)
	var page struct{ Items []struct{ Hash string } }
	s.adminJSON("GET", "/suppressions?email="+url.QueryEscape("bob@bücher.example"), "", http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].Hash != sup.Hash {
		t.Errorf("suppressions of bob@bücher.example: got %+v, want the one added as bob@xn--bcher-kva.example (%s)", page.Items, sup.Hash)
	}
	if rep := s.importCSV("email,topics,basis,consented_at,source\nbob@bücher.example,news,consent,2024-01-01,shop\n"); rep.SkippedSuppressed != 1 {
		t.Errorf("import of the suppressed mailbox in U-labels: got %+v, want it skipped", rep)
	}
	s.waitOutboxEmpty()
	if n := len(s.smtp.Messages()); n != 1 {
		t.Errorf("mails sent: got %d, want 1", n)
	}
}
