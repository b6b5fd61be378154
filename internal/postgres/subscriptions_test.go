package postgres_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/transfer"
)

// Migration 0017: subscriber_topics keeps only its primary key (topic,
// status, subscriber); the filtered listings and the opted-out sweep walk
// its ranges. Migration 0021: the subscriptions are in the subscriber's
// row (subs, with a GIN index), which those walks read a window of ids at
// a time.

// subscriptionRows is, for the tests, the subscriptions of the
// subscribers' rows (migration 0021) as the rows subscriber_topics held
// them: topic, status (its code, a "char"), subscriber and proven (NULL
// for none).
const subscriptionRows = `(SELECT c.topic, (CASE e % 4 WHEN 0 THEN 'p' WHEN 1 THEN 'c' WHEN 2 THEN 'u' ELSE 'l' END)::"char" AS status,
	s.id AS subscriber, (SELECT get_byte(s.proven, i + 2)::smallint FROM generate_series(0, length(s.proven) - 3, 3) i
		WHERE get_byte(s.proven, i) * 256 + get_byte(s.proven, i + 1) = e / 4) AS proven
	FROM subscribers s CROSS JOIN unnest(s.subs) e JOIN topic_codes c ON c.code = e / 4) subscriptions`

// subscriptionsAt is when the subscribers of fillSubscriptions were
// created; subscriptionsNow the stores' clock in these tests.
var (
	subscriptionsAt  = time.Date(2023, 1, 1, 10, 0, 0, 0, time.UTC)
	subscriptionsNow = subscriptionsAt.Add(3 * 365 * consent.Day)
)

// fillSubscriptions stores n subscribers by SQL, as a store at schema
// version 16 or later holds them (the record, its subscriber_topics rows
// with the status codes, or from version 21 the codes of its
// subscriptions in its row; the counters), and returns them in id order.
// Everyone holds news; every third offers, every seventh events, and
// every eleventh gone, a topic the topics table does not hold (deleted
// by hand). The statuses vary by subscriber and topic; every
// thirteenth opted out of everything three years ago (forgettable), and
// every seventeenth lapsed from everything a day ago.
func fillSubscriptions(t *testing.T, pool *pgxpool.Pool, n int) []*consent.Subscriber {
	t.Helper()
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `INSERT INTO topics (id, data) VALUES ('news', '{"id":"news","name":"News"}'),
		('offers', '{"id":"offers","name":"Offers"}'), ('events', '{"id":"events","name":"Events"}')`); err != nil {
		t.Fatal(err)
	}
	statuses := []consent.Status{consent.StatusConfirmed, consent.StatusConfirmed, consent.StatusConfirmed, consent.StatusPending,
		consent.StatusUnsubscribed, consent.StatusConfirmed, consent.StatusLapsed, consent.StatusConfirmed, consent.StatusConfirmed}
	codes := map[consent.Status]string{consent.StatusPending: "p", consent.StatusConfirmed: "c", consent.StatusUnsubscribed: "u", consent.StatusLapsed: "l"}
	var folded bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('subscriber_topics') IS NULL").Scan(&folded); err != nil {
		t.Fatal(err)
	}
	topicCodes := map[string]int16{"news": 1, "offers": 2, "events": 3, "gone": 4}
	statusIndexes := map[consent.Status]int16{consent.StatusPending: 0, consent.StatusConfirmed: 1, consent.StatusUnsubscribed: 2, consent.StatusLapsed: 3}
	if folded {
		for topic, code := range topicCodes {
			if _, err := pool.Exec(ctx, "INSERT INTO topic_codes (code, topic) VALUES ($1, $2)", code, topic); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts := consent.Counts{}
	var subs []*consent.Subscriber
	var subRows, topicRows [][]any
	for i := range n {
		sub := filledSubscriber(i)
		created := sub.Created
		var elems []int16
		for k, topic := range []string{"news", "offers", "events", "gone"} {
			if i%[]int{1, 3, 7, 11}[k] != 0 {
				continue
			}
			st, since := statuses[(i+k)%len(statuses)], created
			switch {
			case i%13 == 0:
				st = consent.StatusUnsubscribed
			case i%17 == 0:
				st, since = consent.StatusLapsed, subscriptionsNow.Add(-consent.Day)
			}
			sub.Subscriptions[topic] = &consent.Subscription{Topic: topic, Status: st, Basis: consent.BasisConsent, Since: since}
			topicRows = append(topicRows, []any{topic, codes[st], record.ID(sub.ID)})
			elems = append(elems, topicCodes[topic]*4+statusIndexes[st])
		}
		row := []any{record.ID(sub.ID), consent.AddressKey(sub.Email), compact(t, sub)}
		if folded {
			slices.Sort(elems)
			row = append(row, elems)
		}
		subRows = append(subRows, row)
		counts.AddSubscriber(sub, 1)
		subs = append(subs, sub)
	}
	tables := []struct {
		table string
		cols  []string
		rows  [][]any
	}{{"subscribers", []string{"id", "email_key", "data"}, subRows}, {"subscriber_topics", []string{"topic", "status", "subscriber"}, topicRows}}
	if folded {
		tables = tables[:1]
		tables[0].cols = append(tables[0].cols, "subs")
	}
	for _, c := range tables {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			t.Fatalf("copy into %s: %v", c.table, err)
		}
	}
	return filled(t, pool, counts, subs)
}

// filledSubscriber is subscriber i of a fill: created i minutes after
// subscriptionsAt, with no subscription yet.
func filledSubscriber(i int) *consent.Subscriber {
	var random [16]byte
	binary.BigEndian.PutUint64(random[:], uint64(i)*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint64(random[8:], uint64(i))
	created := subscriptionsAt.Add(time.Duration(i) * time.Minute)
	return &consent.Subscriber{ID: consent.NewID(created, bytes.NewReader(random[:])), Email: fmt.Sprintf("p%d@example.com", i),
		Locale: "en", Created: created, Subscriptions: map[string]*consent.Subscription{}}
}

// filled ends a fill of subs by SQL: it adds counts to the counters,
// marks them built, vacuums and analyzes the database, as autovacuum
// leaves a database in use, and returns subs in id order.
func filled(t *testing.T, pool *pgxpool.Pool, counts consent.Counts, subs []*consent.Subscriber) []*consent.Subscriber {
	t.Helper()
	for name, n := range counts {
		if _, err := pool.Exec(t.Context(), "INSERT INTO counters (name, n) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET n = counters.n + EXCLUDED.n", name, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, sql := range []string{"INSERT INTO counters_built (built) VALUES (now()) ON CONFLICT DO NOTHING", "VACUUM ANALYZE"} {
		if _, err := pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(subs, func(a, b *consent.Subscriber) int { return strings.Compare(a.ID, b.ID) })
	return subs
}

// subscriptionFilters are the filters by subscription: each status
// alone, each topic alone (gone too), and topic and status together,
// in both orders.
func subscriptionFilters() []consent.SubscriberFilter {
	var fs []consent.SubscriberFilter
	topics := []string{"", "news", "offers", "events", "gone", "nothing"}
	for _, topic := range topics {
		for _, st := range []consent.Status{"", consent.StatusPending, consent.StatusConfirmed, consent.StatusUnsubscribed, consent.StatusLapsed} {
			if topic == "" && st == "" {
				continue
			}
			for _, newest := range []bool{false, true} {
				fs = append(fs, consent.SubscriberFilter{Topic: topic, Status: st, Newest: newest})
			}
		}
	}
	return fs
}

// listAll lists every subscriber matching f, page by page.
func listAll(t *testing.T, db *postgres.DB, f consent.SubscriberFilter, limit int) []string {
	t.Helper()
	var ids []string
	f.Limit = limit
	for pages := 0; ; pages++ {
		page, next, err := db.FindSubscribers(t.Context(), f)
		if err != nil {
			t.Fatalf("FindSubscribers(%+v): %v", f, err)
		}
		for _, s := range page {
			ids = append(ids, s.ID)
		}
		if next == "" {
			return ids
		}
		if pages > 10000 {
			t.Fatalf("FindSubscribers(%+v): no end", f)
		}
		f.Cursor = next
	}
}

// matching returns the ids of subs that match f, in f's order.
func matching(subs []*consent.Subscriber, f consent.SubscriberFilter) []string {
	var ids []string
	for _, s := range subs {
		if f.Match(s, subscriptionsNow) {
			ids = append(ids, s.ID)
		}
	}
	if f.Newest {
		slices.Reverse(ids)
	}
	return ids
}

// TestSubscriptionsFromVersion16: a database at schema version 16 opens
// on this optin (migration 0017 drops the index on subscriber_topics
// (subscriber)), and the filtered listings and the opted-out sweep
// answer what they answered on version 16: the filters of version 16,
// run on it before the migration, and the subscribers' records agree
// with the listings after, a subscription to a topic no longer in the
// topics table included.
func TestSubscriptionsFromVersion16(t *testing.T) {
	ctx := t.Context()
	url := databaseAt(t, 16)
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	subs := fillSubscriptions(t, pool, 400)
	// What version 16's statements (filterWhere and ForgetOptedOut of
	// 4911742) answered.
	v16 := func(f consent.SubscriberFilter) []string {
		t.Helper()
		cond, args := "true", []any{}
		switch {
		case f.Topic != "" && f.Status != "":
			cond, args = "EXISTS (SELECT 1 FROM subscriber_topics st WHERE st.subscriber = s.id AND st.topic = $1 AND st.status = $2)", []any{f.Topic, f.Status[:1]}
		case f.Topic != "":
			cond, args = "EXISTS (SELECT 1 FROM subscriber_topics st WHERE st.subscriber = s.id AND st.topic = $1)", []any{f.Topic}
		case f.Status != "":
			cond, args = "EXISTS (SELECT 1 FROM subscriber_topics st WHERE st.subscriber = s.id AND st.status = $1)", []any{f.Status[:1]}
		}
		order := "s.id"
		if f.Newest {
			order = "s.id DESC"
		}
		rows, err := pool.Query(ctx, "SELECT s.id FROM subscribers s WHERE "+cond+" ORDER BY "+order, args...)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var b []byte
			err := r.Scan(&b)
			return record.IDString(b), err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	before := map[string][]string{}
	for _, f := range subscriptionFilters() {
		before[fmt.Sprint(f)] = v16(f)
	}
	optedOut := v16(consent.SubscriberFilter{Status: consent.StatusUnsubscribed})
	optedOut = append(optedOut, v16(consent.SubscriberFilter{Status: consent.StatusLapsed})...)
	var index int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_indexes WHERE indexname = 'subscriber_topics_subscriber'").Scan(&index); err != nil || index != 1 {
		t.Fatalf("version 16: index subscriber_topics_subscriber: got %d, %v; want it", index, err)
	}

	db := open(t, url, func() time.Time { return subscriptionsNow }, testHMACKey)
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_indexes WHERE tablename = 'subscriber_topics' AND indexname <> 'subscriber_topics_pkey'").Scan(&index); err != nil || index != 0 {
		t.Errorf("version 17: indexes of subscriber_topics besides its primary key: got %d, %v; want none", index, err)
	}
	for _, f := range subscriptionFilters() {
		got := listAll(t, db, f, 7)
		if want := before[fmt.Sprint(f)]; !slices.Equal(got, want) {
			t.Errorf("FindSubscribers(%+v): got %d subscribers, version 16 %d", f, len(got), len(want))
		}
		if want := matching(subs, f); !slices.Equal(got, want) {
			t.Errorf("FindSubscribers(%+v): got %d subscribers, the records %d", f, len(got), len(want))
		}
	}
	// Creation times bound the ranges walked.
	from, to := subscriptionsAt.Add(100*time.Minute), subscriptionsAt.Add(300*time.Minute)
	for _, f := range []consent.SubscriberFilter{{Status: consent.StatusConfirmed}, {Topic: "offers"}, {Topic: "news", Status: consent.StatusPending, Newest: true}} {
		f.CreatedSince, f.CreatedBefore = from, to
		got, want := listAll(t, db, f, 7), matching(subs, f)
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("FindSubscribers(%+v): got %d subscribers, the records %d (some)", f, len(got), len(want))
		}
	}
	// The sweep erases those of version 16's opted-out candidates whose
	// records are forgettable.
	var forgettable []string
	for _, s := range subs {
		if slices.Contains(optedOut, s.ID) && s.Forgettable(subscriptionsNow, 365*consent.Day) {
			forgettable = append(forgettable, s.ID)
		}
	}
	if len(forgettable) == 0 {
		t.Fatal("no forgettable subscriber in the data")
	}
	n, err := db.ForgetOptedOut(ctx, 365*consent.Day)
	if err != nil || n != len(forgettable) {
		t.Fatalf("ForgetOptedOut: got %d, %v; want %d", n, err, len(forgettable))
	}
	for _, id := range forgettable {
		if _, err := db.Subscriber(ctx, id); consent.ErrorCode(err) != consent.ENotFound {
			t.Errorf("Subscriber(%s) after ForgetOptedOut: got %v, want ENotFound", id, err)
		}
	}
}

// TestSubscriptionsNotReadWhole: on a database of some thousands of
// subscribers, the filtered listings by a status alone and the opted-out
// sweep read no table whole (sequential scans, as pg_stat_user_tables
// counts them): they find the subscribers holding the subscriptions
// through the index on subs, or by the primary key up to a page of them
// (subscriberChunk), not by reading every subscriber. (A walk of the
// whole primary key would not count here: TestAudienceNotReadWhole
// counts the rows index scans fetch too.)
func TestSubscriptionsNotReadWhole(t *testing.T) {
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	if err := postgres.MigrateTo(ctx, url, postgres.SchemaVersion()); err != nil {
		t.Fatal(err)
	}
	// A connection counts what it read when it ends, if not before:
	// the data goes in through a pool of its own, and the store is
	// closed before the counts are read.
	fill, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	subs := fillSubscriptions(t, fill, 6000)
	fill.Close()
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tables := []string{"subscribers"}
	rows := map[string]int64{"subscribers": int64(len(subs))}
	before := seqRead(t, pool, tables)
	db, err := postgres.Open(ctx, url, postgres.Options{Now: func() time.Time { return subscriptionsNow }, HMACKey: testHMACKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []consent.Status{consent.StatusPending, consent.StatusConfirmed, consent.StatusUnsubscribed, consent.StatusLapsed} {
		for _, newest := range []bool{false, true} {
			f := consent.SubscriberFilter{Status: st, Newest: newest, Limit: 50}
			page, _, err := db.FindSubscribers(ctx, f)
			if want := matching(subs, f); err != nil || len(page) != min(50, len(want)) || len(want) > 0 && page[0].ID != want[0] {
				t.Fatalf("FindSubscribers(%+v): got %d, %v; want %d", f, len(page), err, min(50, len(want)))
			}
		}
	}
	if n, err := db.ForgetOptedOut(ctx, 365*consent.Day); err != nil || n == 0 {
		t.Fatalf("ForgetOptedOut: got %d, %v; want some", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	after := seqRead(t, pool, tables)
	for _, table := range tables {
		if read := after[table] - before[table]; read >= rows[table] {
			t.Errorf("rows of %s read by sequential scans: got %d, want fewer than the table's %d", table, read, rows[table])
		}
	}
}

// rowsRead returns the rows of tables read by sequential scans and
// fetched by index scans so far, once PostgreSQL has counted what the
// connections read (when they are idle, at most once a second).
func rowsRead(t *testing.T, pool *pgxpool.Pool, tables []string) map[string]int64 {
	return statRead(t, pool, tables, "seq_tup_read + coalesce(idx_tup_fetch, 0)")
}

// seqRead returns the rows of tables read by sequential scans so far
// (see rowsRead).
func seqRead(t *testing.T, pool *pgxpool.Pool, tables []string) map[string]int64 {
	return statRead(t, pool, tables, "seq_tup_read")
}

// statRead returns the sum of pg_stat_user_tables that column names for
// each of tables (see rowsRead).
func statRead(t *testing.T, pool *pgxpool.Pool, tables []string, column string) map[string]int64 {
	t.Helper()
	var read, last map[string]int64
	for tries := 0; tries < 20 && (last == nil || !maps.Equal(read, last)); tries++ {
		time.Sleep(600 * time.Millisecond)
		last, read = read, map[string]int64{}
		for _, table := range tables {
			var n int64
			if err := pool.QueryRow(t.Context(), "SELECT coalesce("+column+", 0) FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			read[table] = n
		}
	}
	return read
}

// TestSubscriptionsFromVersion19: a database at schema version 19 opens
// on this optin (migration 0021 folds subscriber_topics into the
// subscribers' rows): every subscription comes through with its topic,
// status and proven bits, subscriber_topics is gone and subs has its GIN
// index, and the filtered listings and an audience answer what the
// records give.
func TestSubscriptionsFromVersion19(t *testing.T) {
	ctx := t.Context()
	url := databaseAt(t, 19)
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	subs := fillSubscriptions(t, pool, 400)
	// Bits of every basis, on some rows of every status.
	if _, err := pool.Exec(ctx, `UPDATE subscriber_topics SET proven = (get_byte(subscriber, 21) % 8)::smallint WHERE get_byte(subscriber, 20) % 3 <> 0`); err != nil {
		t.Fatal(err)
	}
	const v19 = `SELECT coalesce(string_agg(concat_ws('|', topic, status, encode(subscriber, 'hex'), nullif(proven, 0)), ',' ORDER BY subscriber, topic), '') FROM `
	var before string
	if err := pool.QueryRow(ctx, v19+"subscriber_topics").Scan(&before); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(before, "|7") || !strings.Contains(before, "gone|") {
		t.Fatalf("version 19 rows: want bits 7 and the gone topic among them, got %.200s", before)
	}

	db := open(t, url, func() time.Time { return subscriptionsNow }, testHMACKey)
	var after string
	if err := pool.QueryRow(ctx, v19+subscriptionRows).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("subscriptions after migration 0021:\n got %.300s\nwant %.300s", after, before)
	}
	var left, gin int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_tables WHERE tablename = 'subscriber_topics'),
		(SELECT count(*) FROM pg_indexes WHERE tablename = 'subscribers' AND indexdef LIKE '%USING gin (subs)%')`).Scan(&left, &gin); err != nil || left != 0 || gin != 1 {
		t.Errorf("subscriber_topics tables %d, GIN indexes on subs %d, %v; want 0, 1", left, gin, err)
	}
	for _, f := range subscriptionFilters() {
		if got, want := listAll(t, db, f, 7), matching(subs, f); !slices.Equal(got, want) {
			t.Errorf("FindSubscribers(%+v): got %d subscribers, the records %d", f, len(got), len(want))
		}
	}
	// A topic new to the table gets the next code, and an existing
	// subscriber a subscription to it (an import).
	if _, err := pool.Exec(ctx, `INSERT INTO topics (id, data) VALUES ('later', '{"id":"later","name":"Later"}')`); err != nil {
		t.Fatal(err)
	}
	ir, err := transfer.NewReader(strings.NewReader("email,topics,basis,consented_at,source\n"+subs[0].Email+",later,consent,2024-01-01,shop\n"), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true}); err != nil || rep.Imported+rep.Updated != 1 {
		t.Fatalf("Import: got %+v, %v; want 1 imported or updated", rep, err)
	}
	var code int
	if err := pool.QueryRow(ctx, "SELECT code FROM topic_codes WHERE topic = 'later'").Scan(&code); err != nil || code != 5 {
		t.Errorf("topic_codes of later: got %d, %v; want 5", code, err)
	}
	if got, _, err := db.FindSubscribers(ctx, consent.SubscriberFilter{Topic: "later", Status: consent.StatusConfirmed, Limit: 10}); err != nil || len(got) != 1 || got[0].ID != subs[0].ID {
		t.Errorf("FindSubscribers(later, confirmed): got %d, %v; want %s", len(got), err, subs[0].ID)
	}
}

// TestMigration21Time times migrations 0020 and 0021 on a database at version 19
// of OPTIN_MIGRATE21 subscribers of fillSubscriptions, with a ledger event each (unset: skipped),
// for docs/operations.md.
func TestMigration21Time(t *testing.T) {
	ctx := t.Context()
	url, pool := filledDatabase(t, "OPTIN_MIGRATE21", 19)
	// A ledger event a subscriber, for migration 0020's index (its
	// record is not read by the migrations).
	if _, err := pool.Exec(ctx, `INSERT INTO ledger (seq, subscriber, type, event)
		SELECT row_number() OVER (ORDER BY id), id, 'imported', '\x00'::bytea FROM subscribers`); err != nil {
		t.Fatal(err)
	}
	const sizes = `SELECT (SELECT count(*) FROM subscribers), pg_total_relation_size('subscribers'),
		coalesce(pg_total_relation_size(to_regclass('subscriber_topics')), 0)`
	var subs, before, topics int64
	if err := pool.QueryRow(ctx, sizes).Scan(&subs, &before, &topics); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := postgres.MigrateTo(ctx, url, 20); err != nil {
		t.Fatal(err)
	}
	took20 := time.Since(start)
	start = time.Now()
	if err := postgres.MigrateTo(ctx, url, 21); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var after, gone int64
	if err := pool.QueryRow(ctx, sizes).Scan(&subs, &after, &gone); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM FULL subscribers"); err != nil {
		t.Fatal(err)
	}
	var full int64
	if err := pool.QueryRow(ctx, sizes).Scan(&subs, &full, &gone); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d subscribers: migration 0020 took %v, 0021 %v; subscribers %d bytes and subscriber_topics %d before, subscribers %d after, %d after VACUUM FULL",
		subs, took20, took, before, topics, after, full)
}
