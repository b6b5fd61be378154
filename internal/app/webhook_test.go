package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/webhooktest"
)

type webhookOut struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	Queued int    `json:"queued"`
	Parked int    `json:"parked"`
}

// hook registers rcv as an endpoint for every event with scope and gives
// it the secret, which the answer shows this once.
func (s *service) hook(rcv *webhooktest.Receiver, scope string) string {
	s.t.Helper()
	var w webhookOut
	s.adminJSON("POST", "/webhooks", fmt.Sprintf(`{"url":%q,"scope":%q,"events":["confirmed","unsubscribed",
		"preferences_updated","reconfirmed","lapsed","erased","suppressed"]}`, rcv.URL+"/optin", scope), http.StatusCreated, &w)
	if !strings.HasPrefix(w.Secret, "whsec_") || w.ID == "" {
		s.t.Fatalf("POST /webhooks: got %+v, want an id and a whsec_ secret", w)
	}
	rcv.SetSecret(w.Secret)
	return w.ID
}

// hooks returns the endpoints by id.
func (s *service) hooks() map[string]webhookOut {
	s.t.Helper()
	var out struct{ Items []webhookOut }
	s.adminJSON("GET", "/webhooks", "", http.StatusOK, &out)
	m := map[string]webhookOut{}
	for _, w := range out.Items {
		m[w.ID] = w
	}
	return m
}

// waitHook waits until cond holds for endpoint id.
func (s *service) waitHook(id, what string, cond func(webhookOut) bool) {
	s.t.Helper()
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		w := s.hooks()[id]
		if cond(w) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("webhook %s: %s did not happen: %+v", id, what, w)
		}
	}
}

// drain waits until endpoint id has nothing queued, redelivers what was
// parked, and waits again.
func (s *service) drain(id string) {
	s.t.Helper()
	s.waitHook(id, "queue drained", func(w webhookOut) bool { return w.Queued == 0 })
	s.adminJSON("POST", "/webhooks/"+id+"/redeliver", "", http.StatusOK, nil)
	s.waitHook(id, "queue drained after redelivery", func(w webhookOut) bool { return w.Queued == 0 && w.Parked == 0 })
}

// about returns the types of the messages about subscriber id, first
// arrivals only, in arrival order, and every message about id.
func about(rcv *webhooktest.Receiver, id string) ([]string, []webhooktest.Message) {
	var types []string
	var all []webhooktest.Message
	seen := map[string]bool{}
	for _, m := range rcv.Messages() {
		if m.Data.Subscriber != id {
			continue
		}
		all = append(all, m)
		if !seen[m.ID] {
			seen[m.ID] = true
			types = append(types, m.Type)
		}
	}
	return types, all
}

// TestWebhooks: two real receivers on loopback check every delivery's
// signature on their own; they see each event at least once, in commit
// order per subscriber, through failed attempts; the evidence scope never
// gets an address; an erased person's deliveries carry no address or
// name, even those queued before the erasure; a delivery parked after a
// receiver outage arrives once redelivered; the privacy page says that
// the address goes to other systems once an endpoint takes it.
func TestWebhooks(t *testing.T) {
	s := startService(t, nil)
	const told = "passed on, with your address, your name and the record of your consent"
	if r := s.do("GET", "/privacy", "", ""); r.status != http.StatusOK || strings.Contains(r.body, "passed on") {
		t.Errorf("privacy page without webhooks: got %d, want 200 naming no other recipient", r.status)
	}
	crm, esp := webhooktest.Start(t), webhooktest.Start(t)
	crmID, espID := s.hook(crm, "contact"), s.hook(esp, "evidence")
	if r := s.do("GET", "/privacy", "", ""); !strings.Contains(r.body, told) {
		t.Errorf("privacy page with a contact endpoint: want %q (GDPR Art. 13(1)(e)) in %s", told, r.body)
	}
	if r := s.adminAs(testAdminKey, "GET", "/webhooks", "", ""); strings.Contains(r.body, "whsec_") {
		t.Errorf("GET /webhooks shows a secret: %s", r.body)
	}

	// Failed attempts: each receiver refuses its first five deliveries.
	crm.FailNext(5)
	esp.FailNext(5)
	ann := s.confirmed("ann@example.com")
	link, _ := s.manageLink("ann@example.com")
	if r := s.do("POST", link, "application/x-www-form-urlencoded", ""); r.status != http.StatusOK {
		t.Fatalf("preferences off: got %d", r.status)
	}
	if r := s.do("POST", link, "application/x-www-form-urlencoded", "topics=news"); r.status != http.StatusOK {
		t.Fatalf("preferences on: got %d", r.status)
	}
	s.adminJSON("POST", "/suppressions", `{"email":"ann@example.com","note":"asked us by phone"}`, http.StatusCreated, nil)
	s.waitHook(crmID, "ann's deliveries", func(w webhookOut) bool { return w.Queued == 0 })
	s.waitHook(espID, "ann's deliveries", func(w webhookOut) bool { return w.Queued == 0 })
	want := []string{"confirmed", "unsubscribed", "preferences_updated", "suppressed"}
	for name, rcv := range map[string]*webhooktest.Receiver{"crm": crm, "esp": esp} {
		if got, _ := about(rcv, ann); !slices.Equal(got, want) {
			t.Errorf("%s: messages about ann: got %q, want %q in commit order", name, got, want)
		}
		if rcv.Failed() != 5 {
			t.Errorf("%s: refused %d deliveries, want 5", name, rcv.Failed())
		}
	}
	_, crmAnn := about(crm, ann)
	if len(crmAnn) == 0 || crmAnn[0].Data.Email != "ann@example.com" {
		t.Errorf("crm (contact scope): got %+v, want ann's address", crmAnn)
	}
	for _, m := range esp.Messages() {
		if strings.Contains(m.Body, "example.com") || m.Data.Email != "" || strings.Contains(m.Body, "phone") {
			t.Errorf("esp (evidence scope) got personal data: %s", m.Body)
		}
	}
	var evidence struct {
		Seq    uint64 `json:"seq"`
		Hash   string `json:"hash"`
		Source string `json:"source"`
	}
	if err := json.Unmarshal(crmAnn[0].Data.Evidence, &evidence); err != nil || evidence.Seq == 0 || evidence.Source != "form:newsletter" {
		t.Errorf("confirmed evidence: got %s, %v, want seq, hash and source form:newsletter", crmAnn[0].Data.Evidence, err)
	}
	var consents struct {
		Items []struct {
			Seq  uint64 `json:"seq"`
			Hash string `json:"hash"`
			Type string `json:"type"`
		}
	}
	s.adminJSON("GET", "/subscribers/"+ann+"/consents", "", http.StatusOK, &consents)
	if !slices.ContainsFunc(consents.Items, func(e struct {
		Seq  uint64 `json:"seq"`
		Hash string `json:"hash"`
		Type string `json:"type"`
	}) bool {
		return e.Seq == evidence.Seq && e.Hash == evidence.Hash && e.Type == "confirmed"
	}) {
		t.Errorf("confirmed evidence seq %d hash %s is not in ann's consents %+v", evidence.Seq, evidence.Hash, consents.Items)
	}

	// An erasure while the crm is down: what reaches it afterwards about
	// carol carries no address or name.
	crm.Down(true)
	carol := s.confirmed("carol@example.com")
	refused := crm.Failed()
	s.adminJSON("DELETE", "/subscribers/"+carol, "", http.StatusNoContent, nil)
	// An attempt that read carol's data just before the erasure may still
	// be on its way; it ends, refused, before the crm comes back. Her
	// deliveries go one at a time, so once the crm has refused one after
	// the erasure (or none is left queued, all parked), the next reads
	// what the erasure left.
	s.waitHook(crmID, "the attempt in flight at the erasure ended", func(w webhookOut) bool {
		return crm.Failed() > refused || w.Queued == 0
	})
	crm.Down(false)
	s.drain(crmID)
	got, carolMsgs := about(crm, carol)
	if !slices.Equal(got, []string{"confirmed", "erased"}) {
		t.Errorf("crm: messages about carol: got %q, want confirmed, erased", got)
	}
	for _, m := range carolMsgs {
		if m.Data.Email != "" || m.Data.Name != "" || strings.Contains(m.Body, "carol") {
			t.Errorf("crm got carol's personal data after her erasure: %s", m.Body)
		}
	}

	// An outage longer than the retries: the delivery is parked, and
	// arrives once redelivered. Carol's deliveries to the esp go out
	// first, or the outage parks them too.
	s.waitHook(espID, "carol's deliveries", func(w webhookOut) bool { return w.Queued == 0 && w.Parked == 0 })
	esp.Down(true)
	dave := s.confirmed("dave@example.com")
	s.waitHook(espID, "dave's delivery parked", func(w webhookOut) bool { return w.Parked == 1 && w.Queued == 0 })
	esp.Down(false)
	s.drain(espID)
	if got, _ := about(esp, dave); !slices.Equal(got, []string{"confirmed"}) {
		t.Errorf("esp: messages about dave after the redelivery: got %q, want confirmed", got)
	}

	for name, rcv := range map[string]*webhooktest.Receiver{"crm": crm, "esp": esp} {
		if bad := rcv.Bad(); len(bad) > 0 {
			t.Errorf("%s refused deliveries: %q", name, bad)
		}
	}
	metrics := s.do("GET", "/metrics", "", "").body
	for _, line := range []string{`optin_webhook_deliveries_total{event="confirmed",result="parked"} 1`,
		`optin_webhook_deliveries_total{event="erased",result="delivered"}`, `optin_webhook_queue_depth{state="parked"} 0`} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	audit := s.adminAs(testAdminKey, "GET", "/audit", "", "").body
	for _, action := range []string{"webhook.create", "webhook.redeliver"} {
		if !strings.Contains(audit, `"`+action+`"`) {
			t.Errorf("audit lacks %s", action)
		}
	}
	s.adminJSON("DELETE", "/webhooks/"+espID, "", http.StatusNoContent, nil)
	if _, ok := s.hooks()[espID]; ok {
		t.Error("deleted endpoint still listed")
	}
}
