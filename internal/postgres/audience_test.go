package postgres_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// Migration 0021: a campaign's audience finds the subscribers confirmed
// on its topic through the GIN index on subs, a window of ids at a time.

// fillAudience stores n subscribers by SQL as this schema holds them:
// three in four confirmed on dense, one in fifty on sparse, each with
// the consent its events prove (proven), created a minute apart from
// subscriptionsAt. It returns them in id order.
func fillAudience(t *testing.T, pool *pgxpool.Pool, n int) []*consent.Subscriber {
	t.Helper()
	ctx := t.Context()
	for _, sql := range []string{`INSERT INTO topics (id, data) VALUES ('dense', '{"id":"dense","name":"Dense"}'), ('sparse', '{"id":"sparse","name":"Sparse"}')`,
		"INSERT INTO topic_codes (code, topic) VALUES (1, 'dense'), (2, 'sparse')"} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	counts := consent.Counts{}
	var subs []*consent.Subscriber
	var rows [][]any
	for i := range n {
		sub := filledSubscriber(i)
		created := sub.Created
		var elems []int16
		var proven []byte
		for code, topic := range map[int16]string{1: "dense", 2: "sparse"} {
			if topic == "dense" && i%4 == 0 || topic == "sparse" && i%50 != 0 {
				continue
			}
			sub.Subscriptions[topic] = &consent.Subscription{Topic: topic, Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: created}
			elems = append(elems, code*4+1)
		}
		slices.Sort(elems)
		for _, e := range elems {
			proven = append(binary.BigEndian.AppendUint16(proven, uint16(e/4)), 1)
		}
		var subsCol any
		if elems != nil {
			subsCol = elems
		}
		var provenCol any
		if proven != nil {
			provenCol = proven
		}
		rows = append(rows, []any{record.ID(sub.ID), consent.AddressKey(sub.Email), compact(t, sub), subsCol, provenCol})
		counts.AddSubscriber(sub, 1)
		subs = append(subs, sub)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"subscribers"}, []string{"id", "email_key", "data", "subs", "proven"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	return filled(t, pool, counts, subs)
}

// audienceIn returns the ids of subs in campaign c's audience at now:
// none suppressed, every consent proven.
func audienceIn(t *testing.T, subs []*consent.Subscriber, c *consent.Campaign, p consent.CampaignPolicy) []string {
	t.Helper()
	var ids []string
	for _, sub := range subs {
		ok, _, err := c.SelectLooking(sub, subscriptionsNow, p, func() (bool, error) { return false, nil },
			func(consent.Basis) (bool, error) { return true, nil })
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			ids = append(ids, sub.ID)
		}
	}
	return ids
}

// listAudience lists every page of campaign id's audience kept by only.
func listAudience(t *testing.T, db *postgres.DB, id, only string, limit int, p consent.CampaignPolicy) []string {
	t.Helper()
	var ids []string
	q := consent.AudienceQuery{Limit: limit, Only: only}
	for {
		page, err := db.CampaignAudience(t.Context(), id, p, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			ids = append(ids, e.Subscriber)
		}
		if page.NextCursor == "" {
			return ids
		}
		q.Cursor = page.NextCursor
	}
}

// TestAudienceNotReadWhole: on a database of some thousands of
// subscribers, the preview and the audience list page by page of a
// campaign on a topic few hold read fewer subscribers than half the
// table, and those of one on a topic most hold fewer than four times the
// table (the rows sequential scans read and index scans fetched; the
// list reads twice the page to fill it, the preview every subscriber
// holding the topic): the pages do not walk every subscriber for the
// few, nor read every one holding the topic again for each page of the
// many (about 30 times the table here). The listings are the audiences
// the records give.
func TestAudienceNotReadWhole(t *testing.T) {
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	if err := postgres.MigrateTo(ctx, url, postgres.SchemaVersion()); err != nil {
		t.Fatal(err)
	}
	const n = 6000
	fill, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	subs := fillAudience(t, fill, n)
	fill.Close()
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	tables := []string{"subscribers"}
	for _, c := range []struct {
		topic string
		most  int64
	}{{"sparse", n / 2}, {"dense", 4 * n}} {
		// A connection counts what it read when it ends, if not
		// before: the store is closed before the counts are read.
		db, err := postgres.Open(ctx, url, postgres.Options{Now: func() time.Time { return subscriptionsNow }, HMACKey: testHMACKey})
		if err != nil {
			t.Fatal(err)
		}
		camp, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: c.topic, Topic: c.topic,
			Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
		if err != nil {
			t.Fatal(err)
		}
		want := audienceIn(t, subs, camp, p)
		if len(want) == 0 {
			t.Fatalf("%s: no one in the audience", c.topic)
		}
		before := rowsRead(t, pool, tables)
		pv, err := db.PreviewCampaign(ctx, camp.ID, p)
		if err != nil || pv.Audience != len(want) {
			t.Errorf("%s: PreviewCampaign: got %d in, %v; want %d", c.topic, pv.Audience, err, len(want))
		}
		if got := listAudience(t, db, camp.ID, "in", 50, p); !slices.Equal(got, want) {
			t.Errorf("%s: CampaignAudience: got %d in, want %d", c.topic, len(got), len(want))
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		after := rowsRead(t, pool, tables)
		read := after["subscribers"] - before["subscribers"]
		t.Logf("%s: %d subscribers read, %d in", c.topic, read, len(want))
		if read >= c.most {
			t.Errorf("%s: subscribers read by sequential scans and fetched by index scans: got %d, want fewer than %d (%d subscribers, %d in)",
				c.topic, read, c.most, n, len(want))
		}
	}
}

// TestExplainAudience prints the plans of the statements that find an
// audience's subscribers, on a database of OPTIN_EXPLAIN subscribers
// (unset: skipped), for docs/performance.md.
func TestExplainAudience(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("OPTIN_EXPLAIN"))
	if n == 0 {
		t.Skip("OPTIN_EXPLAIN unset")
	}
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	if err := postgres.MigrateTo(ctx, url, postgres.SchemaVersion()); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	subs := fillAudience(t, pool, n)
	explain := func(sql string, args ...any) {
		t.Helper()
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s %v\n%s", sql, args, strings.Join(lines, "\n"))
	}
	db := open(t, url, func() time.Time { return subscriptionsNow }, testHMACKey)
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	for _, topic := range []string{"dense", "sparse"} {
		camp, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: topic, Topic: topic,
			Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			start := time.Now()
			pv, err := db.PreviewCampaign(ctx, camp.ID, p)
			preview := time.Since(start)
			start = time.Now()
			page, err2 := db.CampaignAudience(ctx, camp.ID, p, consent.AudienceQuery{Limit: 100, Only: "in"})
			first := time.Since(start)
			start = time.Now()
			in := listAudience(t, db, camp.ID, "in", 100, p)
			t.Logf("%s: preview %v (%d in, %v); first page of 100 %v (%d, %v); every page of 100 %v (%d in)",
				topic, preview, pv.Audience, err, first, len(page.Items), err2, time.Since(start), len(in))
		}
	}
	for _, c := range []struct {
		name string
		elem int
	}{{"dense", 5}, {"sparse", 9}} {
		for _, limit := range []int{100, 2000} {
			for _, at := range []int{0, len(subs) / 2} {
				t.Logf("== %s, limit %d, after subscriber %d", c.name, limit, at)
				explain(fmt.Sprintf("SELECT s.id, s.data, s.proven FROM subscribers s WHERE s.id > $1 AND s.subs && '{%d}'::smallint[] ORDER BY s.id LIMIT $2", c.elem),
					record.ID(subs[at].ID), limit)
			}
		}
	}
}
