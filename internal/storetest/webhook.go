package storetest

import (
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// createWebhook registers an endpoint at url for events with scope.
func (f *fixture) createWebhook(url string, scope consent.WebhookScope, events ...consent.WebhookEvent) consent.Webhook {
	f.t.Helper()
	w, err := consent.NewWebhook(rand.Reader, consent.WebhookInput{URL: url, Events: events, Scope: scope})
	if err != nil {
		f.t.Fatalf("NewWebhook(%s): got err %v, want nil", url, err)
	}
	if w, err = f.s.CreateWebhook(f.t.Context(), admin, w); err != nil || w.ID == "" {
		f.t.Fatalf("CreateWebhook(%s): got %+v, %v, want an id, nil", url, w, err)
	}
	return w
}

// dueDeliveries returns the deliveries due now as "endpoint-url event",
// with the deliveries themselves.
func (f *fixture) dueDeliveries(names map[string]string) ([]string, []consent.Delivery) {
	f.t.Helper()
	ds, err := f.s.DueDeliveries(f.t.Context(), f.now(), 100, nil)
	if err != nil {
		f.t.Fatalf("DueDeliveries: got err %v, want nil", err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, names[d.Webhook]+" "+string(d.Event))
	}
	return got, ds
}

// testWebhooks: each reported ledger event and operator suppression is
// queued for the endpoints that take it, in its own transaction; one
// endpoint's deliveries about one subscriber are due one at a time in
// commit order (a retry holds the next back, finishing or parking
// releases it); an erasure keeps the deliveries, whose content then holds
// no subscriber; parked deliveries are redelivered with their message
// ids; deleting an endpoint drops its deliveries; every change is
// audited.
func testWebhooks(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	if ds, err := f.s.DueDeliveries(ctx, f.now(), 10, nil); err != nil || len(ds) != 0 {
		t.Fatalf("DueDeliveries without endpoints: got %v, %v, want none", ds, err)
	}
	crm := f.createWebhook("https://crm.example/hook", consent.ScopeContact, consent.WebhookEvents...)
	esp := f.createWebhook("https://esp.example/hook", consent.ScopeEvidence, consent.WebhookUnsubscribed)
	names := map[string]string{crm.ID: "crm", esp.ID: "esp"}
	if got, err := f.s.Webhook(ctx, crm.ID); err != nil || got.Secret != crm.Secret || got.URL != crm.URL || got.Scope != consent.ScopeContact {
		t.Errorf("Webhook(crm): got %+v, %v, want it with its secret", got, err)
	}
	_, err := f.s.Webhook(ctx, "nope")
	f.wantCode("Webhook(unknown)", err, consent.ENotFound)

	ann := f.subscribe("ann@example.com") // requested (not reported), confirmed
	got, ds := f.dueDeliveries(names)
	if !slices.Equal(got, []string{"crm confirmed"}) {
		t.Fatalf("due after a confirmation: got %q, want [crm confirmed]", got)
	}
	confirmed := ds[0]
	evs := f.events(ann.ID)
	if confirmed.Subscriber != ann.ID || confirmed.Seq != evs[len(evs)-1].Seq || confirmed.MessageID() == "" {
		t.Errorf("confirmed delivery: got %+v, want subscriber %s, seq %d and a message id", confirmed, ann.ID, evs[len(evs)-1].Seq)
	}
	ev, sub, err := f.s.DeliveryContent(ctx, confirmed)
	if err != nil || ev == nil || ev.Hash != evs[len(evs)-1].Hash || ev.Type != consent.EventConfirmed || sub == nil || sub.Email != "ann@example.com" {
		t.Errorf("DeliveryContent(confirmed): got %+v, %+v, %v, want the confirmed event and Ann", ev, sub, err)
	}

	f.clock.Advance(time.Second)
	f.unsubscribe(ann.ID, "")
	got, ds = f.dueDeliveries(names)
	if !slices.Equal(got, []string{"crm confirmed", "esp unsubscribed"}) {
		t.Fatalf("due after an unsubscribe: got %q, want crm's confirmed (its unsubscribed waits behind it), esp's unsubscribed", got)
	}
	busy := func(d consent.Delivery) bool { return d.Webhook == crm.ID }
	if skipped, err := f.s.DueDeliveries(ctx, f.now(), 1, busy); err != nil || len(skipped) != 1 || skipped[0].Webhook != esp.ID {
		t.Errorf("DueDeliveries(limit 1) skipping crm's: got %+v, %v, want esp's (the limit counts what is returned)", skipped, err)
	}
	if err := f.s.RetryDelivery(ctx, confirmed, f.now().Add(time.Minute), "HTTP 500"); err != nil {
		t.Fatalf("RetryDelivery: got err %v, want nil", err)
	}
	if got, _ = f.dueDeliveries(names); !slices.Equal(got, []string{"esp unsubscribed"}) {
		t.Errorf("due while crm's first delivery waits for a retry: got %q, want only esp's", got)
	}
	if next, err := f.s.NextDelivery(ctx); err != nil || !next.Equal(ds[1].NextAt) {
		t.Errorf("NextDelivery: got %v, %v, want %v (esp's, due now)", next, err, ds[1].NextAt)
	}
	if err := f.s.FinishDelivery(ctx, ds[1]); err != nil {
		t.Fatalf("FinishDelivery: got err %v, want nil", err)
	}
	if next, err := f.s.NextDelivery(ctx); err != nil || !next.Equal(f.now().Add(time.Minute)) {
		t.Errorf("NextDelivery with only the retry left: got %v, %v, want %v", next, err, f.now().Add(time.Minute))
	}
	f.clock.Advance(time.Minute)
	got, ds = f.dueDeliveries(names)
	if !slices.Equal(got, []string{"crm confirmed"}) || ds[0].Attempts != 1 || ds[0].LastError != "HTTP 500" {
		t.Fatalf("due after the retry time: got %q %+v, want crm confirmed after 1 attempt (HTTP 500)", got, ds)
	}
	if err := f.s.ParkDelivery(ctx, ds[0], "HTTP 500"); err != nil {
		t.Fatalf("ParkDelivery: got err %v, want nil", err)
	}
	got, ds = f.dueDeliveries(names)
	if !slices.Equal(got, []string{"crm unsubscribed"}) {
		t.Fatalf("due after parking: got %q, want crm unsubscribed", got)
	}
	unsubscribed := ds[0]

	if err := f.s.Erase(ctx, ann.ID, consent.ChannelPreferences); err != nil {
		t.Fatalf("Erase: got err %v, want nil", err)
	}
	ev, sub, err = f.s.DeliveryContent(ctx, unsubscribed)
	if err != nil || ev == nil || ev.Type != consent.EventUnsubscribed || sub != nil {
		t.Errorf("DeliveryContent(unsubscribed) after the erasure: got %+v, %+v, %v, want the event and no subscriber", ev, sub, err)
	}
	if queued, parked, err := f.s.WebhookDepth(ctx); err != nil || queued != 2 || parked != 1 {
		t.Errorf("WebhookDepth: got %d, %d, %v, want 2 queued (unsubscribed, erased), 1 parked", queued, parked, err)
	}
	infos, err := f.s.Webhooks(ctx)
	if err != nil || len(infos) != 2 {
		t.Fatalf("Webhooks: got %+v, %v, want two", infos, err)
	}
	for _, in := range infos {
		want := [2]int{0, 0}
		if in.ID == crm.ID {
			want = [2]int{2, 1}
		}
		if got := [2]int{in.Queued, in.Parked}; got != want || in.URL == "" {
			t.Errorf("Webhooks: %s has queued, parked %v, want %v", names[in.ID], got, want)
		}
	}

	n, err := f.s.RedeliverWebhook(ctx, admin, crm.ID)
	if err != nil || n != 1 {
		t.Fatalf("RedeliverWebhook: got %d, %v, want 1", n, err)
	}
	if n, err := f.s.RedeliverWebhook(ctx, admin, crm.ID); err != nil || n != 0 {
		t.Errorf("RedeliverWebhook again: got %d, %v, want 0", n, err)
	}
	var order []string
	var redelivered consent.Delivery
	for range 4 {
		got, ds := f.dueDeliveries(names)
		if len(ds) == 0 {
			break
		}
		if len(ds) != 1 {
			t.Fatalf("due: got %q, want one at a time", got)
		}
		order = append(order, got[0])
		if ds[0].Event == consent.WebhookConfirmed {
			redelivered = ds[0]
		}
		if err := f.s.FinishDelivery(ctx, ds[0]); err != nil {
			t.Fatalf("FinishDelivery: got err %v, want nil", err)
		}
	}
	if want := []string{"crm unsubscribed", "crm erased", "crm confirmed"}; !slices.Equal(order, want) {
		t.Errorf("deliveries about Ann: got %q, want %q (the redelivery behind what waited)", order, want)
	}
	if redelivered.MessageID() != confirmed.MessageID() || redelivered.Attempts != 0 {
		t.Errorf("redelivered: got message id %q after %d attempts, want %q, 0", redelivered.MessageID(), redelivered.Attempts, confirmed.MessageID())
	}

	f.suppress("bob@example.com", "") // an address no subscriber holds
	f.suppress("bob@example.com", "") // already suppressed: nothing new
	got, ds = f.dueDeliveries(names)
	if !slices.Equal(got, []string{"crm suppressed"}) || ds[0].Subscriber != "" || ds[0].Suppression == nil ||
		ds[0].Suppression.Reason != consent.ReasonAdmin || ds[0].Suppression.Scope != consent.ScopeAll {
		t.Fatalf("due after an operator's suppression: got %q %+v, want one crm suppressed of scope * by an operator", got, ds)
	}
	if err := f.s.DeleteWebhook(ctx, admin, crm.ID); err != nil {
		t.Fatalf("DeleteWebhook: got err %v, want nil", err)
	}
	f.wantCode("DeleteWebhook again", f.s.DeleteWebhook(ctx, admin, crm.ID), consent.ENotFound)
	if queued, parked, err := f.s.WebhookDepth(ctx); err != nil || queued != 0 || parked != 0 {
		t.Errorf("WebhookDepth after deleting the endpoint: got %d, %d, %v, want 0, 0", queued, parked, err)
	}
	if err := f.s.FinishDelivery(ctx, ds[0]); err != nil {
		t.Errorf("FinishDelivery of a deleted endpoint's delivery: got err %v, want nil", err)
	}
	actions := f.auditActions()
	for _, want := range []string{"webhook.create", "webhook.redeliver", "webhook.delete"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit: got %q, want %s", actions, want)
		}
	}
	for i := range consent.MaxWebhooks - 1 {
		f.createWebhook(fmt.Sprintf("https://h%d.example/", i), consent.ScopeEvidence, consent.WebhookErased)
	}
	w, _ := consent.NewWebhook(rand.Reader, consent.WebhookInput{URL: "https://one-too-many.example/", Events: []consent.WebhookEvent{consent.WebhookErased}})
	_, err = f.s.CreateWebhook(ctx, admin, w)
	f.wantCode("CreateWebhook beyond the cap", err, consent.EConflict)
}

// testWebhookHeads: QueueHead queues the signed head for the endpoints
// that take ledger_head and no other, carrying the note and no
// subscriber; its content is neither an event nor a person.
func testWebhookHeads(t *testing.T, f *fixture) {
	ctx := t.Context()
	if err := f.s.QueueHead(ctx, "no endpoints yet"); err != nil {
		t.Fatalf("QueueHead without endpoints: got err %v, want nil", err)
	}
	witness := f.createWebhook("https://witness.example/heads", consent.ScopeEvidence, consent.WebhookLedgerHead)
	f.createWebhook("https://crm.example/hook", consent.ScopeContact, consent.WebhookConfirmed)
	note := "optin.example/ledger\n3\nAAAA\n\n— optin.example/ledger sig\n"
	if err := f.s.QueueHead(ctx, note); err != nil {
		t.Fatalf("QueueHead: got err %v, want nil", err)
	}
	ds, err := f.s.DueDeliveries(ctx, f.now(), 100, nil)
	if err != nil || len(ds) != 1 {
		t.Fatalf("DueDeliveries: got %+v, %v, want the one head delivery", ds, err)
	}
	if d := ds[0]; d.Webhook != witness.ID || d.Event != consent.WebhookLedgerHead || d.Head != note || d.Subscriber != "" || d.Seq != 0 {
		t.Errorf("head delivery: got %+v, want the witness's, with the note", d)
	}
	if ev, sub, err := f.s.DeliveryContent(ctx, ds[0]); err != nil || ev != nil || sub != nil {
		t.Errorf("DeliveryContent of a head: got %v, %v, %v, want nil, nil, nil", ev, sub, err)
	}
}
