package consent_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// TestNewWebhook: URLs are https (http on loopback only), events known and
// at least one, the scope evidence by default; the secret is whsec_ and
// the base64 of 32 bytes.
func TestNewWebhook(t *testing.T) {
	all := []consent.WebhookEvent{consent.WebhookConfirmed}
	tests := []struct {
		name string
		in   consent.WebhookInput
		ok   bool
	}{
		{"https", consent.WebhookInput{URL: "https://crm.example/hooks/optin", Events: all}, true},
		{"loopback http", consent.WebhookInput{URL: "http://127.0.0.1:9000/hook", Events: all, Scope: consent.ScopeContact}, true},
		{"localhost http", consent.WebhookInput{URL: "http://localhost/hook", Events: all}, true},
		{"public http", consent.WebhookInput{URL: "http://crm.example/hook", Events: all}, false},
		{"user info", consent.WebhookInput{URL: "https://u:p@crm.example/hook", Events: all}, false},
		{"fragment", consent.WebhookInput{URL: "https://crm.example/hook#x", Events: all}, false},
		{"relative", consent.WebhookInput{URL: "/hook", Events: all}, false},
		{"other scheme", consent.WebhookInput{URL: "ftp://crm.example/", Events: all}, false},
		{"no events", consent.WebhookInput{URL: "https://crm.example/"}, false},
		{"unknown event", consent.WebhookInput{URL: "https://crm.example/", Events: []consent.WebhookEvent{"requested"}}, false},
		{"unknown scope", consent.WebhookInput{URL: "https://crm.example/", Events: all, Scope: "everything"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := consent.NewWebhook(bytes.NewReader(make([]byte, 32)), tt.in)
			if !tt.ok {
				if consent.ErrorCode(err) != consent.EInvalid {
					t.Errorf("NewWebhook(%+v): got %+v, %v, want EInvalid", tt.in, w, err)
				}
				return
			}
			key, kerr := w.Key()
			if err != nil || !strings.HasPrefix(w.Secret, "whsec_") || kerr != nil || len(key) != 32 || w.Scope == "" {
				t.Errorf("NewWebhook(%+v): got %+v, %v (key %d bytes, %v), want a whsec_ secret of 32 bytes and a scope", tt.in, w, err, len(key), kerr)
			}
		})
	}
	w, err := consent.NewWebhook(bytes.NewReader(make([]byte, 32)), consent.WebhookInput{URL: "https://crm.example/",
		Events: []consent.WebhookEvent{"erased", "confirmed", "erased"}})
	if err != nil || len(w.Events) != 2 || w.Events[0] != "confirmed" || w.Scope != consent.ScopeEvidence {
		t.Errorf("NewWebhook with a repeated event: got %+v, %v, want [confirmed erased] with scope evidence", w, err)
	}
}

// TestRenderWebhook: every scope gets the evidence of the ledger event;
// only contact gets the address and name, and only while the subscriber
// exists; a suppression names the operator, never the note.
func TestRenderWebhook(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := &consent.Event{Seq: 7, Hash: "abc", Time: at, Type: consent.EventConfirmed, Subscriber: "s1", Topics: []string{"news"},
		Basis: consent.BasisConsent, Source: "form:newsletter", Page: "https://shop.example/", Wording: "w1", PersonalDigest: "pd"}
	sub := &consent.Subscriber{ID: "s1", Email: "ann@example.com", Name: "Ann"}
	d := ev.Queue([]consent.Webhook{{ID: "h1", Events: []consent.WebhookEvent{consent.WebhookConfirmed}}, {ID: "h2", Events: []consent.WebhookEvent{consent.WebhookErased}}})
	if len(d) != 1 || d[0].Webhook != "h1" || d[0].Seq != 7 || d[0].Subscriber != "s1" {
		t.Fatalf("Queue: got %+v, want one delivery to h1", d)
	}
	render := func(sub *consent.Subscriber, scope consent.WebhookScope) string {
		b, err := json.Marshal(consent.RenderWebhook(d[0], ev, sub, scope))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	evidence := `{"type":"confirmed","timestamp":"2030-01-02T03:04:05Z","data":{"subscriber":"s1","evidence":{"seq":7,"hash":"abc",` +
		`"time":"2030-01-02T03:04:05Z","topics":["news"],"basis":"consent","source":"form:newsletter","page":"https://shop.example/","wording":"w1"}}}`
	if got := render(sub, consent.ScopeEvidence); got != evidence {
		t.Errorf("evidence scope:\n got %s\nwant %s", got, evidence)
	}
	if got, want := render(sub, consent.ScopeContact), strings.TrimSuffix(evidence, "}}")+`,"email":"ann@example.com","name":"Ann"}}`; got != want {
		t.Errorf("contact scope:\n got %s\nwant %s", got, want)
	}
	if got := render(nil, consent.ScopeContact); got != evidence {
		t.Errorf("contact scope after erasure:\n got %s\nwant %s", got, evidence)
	}
	s := consent.Suppression{Hash: "h", Scope: "*", Reason: consent.ReasonAdmin, Source: "admin:ops: call from Ann", Created: at}
	ds := consent.QueueSuppressed([]consent.Webhook{{ID: "h1", Events: consent.WebhookEvents}}, s, "s1")
	b, _ := json.Marshal(consent.RenderWebhook(ds[0], nil, sub, consent.ScopeEvidence))
	if want := `{"type":"suppressed","timestamp":"2030-01-02T03:04:05Z","data":{"subscriber":"s1","suppression":{"scope":"*","reason":"operator","time":"2030-01-02T03:04:05Z"}}}`; string(b) != want {
		t.Errorf("suppressed:\n got %s\nwant %s", b, want)
	}
	s.Reason = consent.ReasonUnsubscribed
	if ds := consent.QueueSuppressed([]consent.Webhook{{ID: "h1", Events: consent.WebhookEvents}}, s, "s1"); len(ds) != 0 {
		t.Errorf("QueueSuppressed of the person's own opt-out: got %+v, want none (the unsubscribed event reports it)", ds)
	}
}

// TestRenderWebhookChannels: the channel and frequency events are
// reported under their own names, their evidence names the channel or the
// frequency, and a contact-scope endpoint gets the number and the postal
// address with a channel event (not with the others).
func TestRenderWebhookChannels(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	sub := &consent.Subscriber{ID: "s1", Email: "ann@example.com", Phone: "+46701234567", PostalAddress: "Storgatan 1"}
	hooks := []consent.Webhook{{ID: "h1", Events: consent.WebhookEvents}}
	for _, tc := range []struct {
		ev   consent.Event
		want string
	}{
		{consent.Event{Seq: 1, Hash: "a", Time: at, Type: consent.EventChannelConsented, Subscriber: "s1", Topics: []string{"news"},
			Basis: consent.BasisConsent, Source: "form:newsletter", Channel: consent.ChannelSMS},
			`{"type":"channel_consented","timestamp":"2030-01-02T03:04:05Z","data":{"subscriber":"s1","evidence":{"seq":1,"hash":"a",` +
				`"time":"2030-01-02T03:04:05Z","topics":["news"],"basis":"consent","source":"form:newsletter","channel":"sms"},` +
				`"email":"ann@example.com","phone":"+46701234567","postal_address":"Storgatan 1"}}`},
		{consent.Event{Seq: 2, Hash: "b", Time: at, Type: consent.EventChannelWithdrawn, Subscriber: "s1", Topics: []string{"news"},
			Source: "preferences", Channel: consent.ChannelPost},
			`{"type":"channel_withdrawn","timestamp":"2030-01-02T03:04:05Z","data":{"subscriber":"s1","evidence":{"seq":2,"hash":"b",` +
				`"time":"2030-01-02T03:04:05Z","topics":["news"],"source":"preferences","channel":"post"},` +
				`"email":"ann@example.com","phone":"+46701234567","postal_address":"Storgatan 1"}}`},
		{consent.Event{Seq: 3, Hash: "c", Time: at, Type: consent.EventFrequencyChosen, Subscriber: "s1", Topics: []string{"news"},
			Source: "preferences", Frequency: consent.FrequencyMonthly},
			`{"type":"frequency_chosen","timestamp":"2030-01-02T03:04:05Z","data":{"subscriber":"s1","evidence":{"seq":3,"hash":"c",` +
				`"time":"2030-01-02T03:04:05Z","topics":["news"],"source":"preferences","frequency":"monthly"},"email":"ann@example.com"}}`},
	} {
		if e, ok := consent.WebhookEventOf(tc.ev.Type); !ok || string(e) != string(tc.ev.Type) {
			t.Errorf("WebhookEventOf(%s): got %q, %v", tc.ev.Type, e, ok)
		}
		ds := tc.ev.Queue(hooks)
		if len(ds) != 1 {
			t.Fatalf("Queue(%s): got %+v, want one delivery", tc.ev.Type, ds)
		}
		b, _ := json.Marshal(consent.RenderWebhook(ds[0], &tc.ev, sub, consent.ScopeContact))
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.ev.Type, b, tc.want)
		}
	}
	if _, ok := consent.WebhookEventOf(consent.EventRectified); ok {
		t.Error("rectified events are reported by a webhook")
	}
}
