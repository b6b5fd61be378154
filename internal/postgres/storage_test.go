package postgres_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/storetest"
	"optin/internal/testclock"
)

var storageN = flag.Int("storage.n", 100_000, "how many subscribers BenchmarkStorage imports and signs up")

// BenchmarkStorage measures what the PostgreSQL store keeps per record,
// on the records the bbolt store's BenchmarkStorage writes
// (storetest.StorageImport, storetest.StorageSignups): -storage.n
// subscribers imported with one topic on consent with evidence into one
// database, as many pending signups (subscriber, request, requested
// event with its personal record, confirmation mail queued) into
// another, and as many signups confirmed by a click once their mail went
// (storetest.StorageConfirmed) into a third, and into a fourth as many
// again with their requests swept once long expired, which is what a
// signed-up subscriber keeps for good (storetest.StorageSettled: B/settled). It reports the growth of optin's tables and their indexes
// per record twice: as the writes left them (B/imported, B/pending,
// B/confirmed: pages as they filled, dead row versions included) and
// after VACUUM FULL has rewritten every table and index with the live
// rows alone (B/...-vacuumed). It logs where the bytes go,
// per relation, and each index's bytes per entry. A hash index that
// VACUUM FULL rebuilds takes a power of two of buckets for its rows, so
// its bytes per entry after it step with the number of rows.
//
//	go test -run '^$' -bench Storage -benchtime 1x ./internal/postgres
func BenchmarkStorage(b *testing.B) {
	n := *storageN
	for range b.N {
		imported := storageRun(b, n, func(ctx context.Context, db *postgres.DB, form *consent.Form, _ *testclock.Clock) error {
			return storetest.StorageImport(ctx, db, n)
		})
		pending := storageRun(b, n, func(ctx context.Context, db *postgres.DB, form *consent.Form, _ *testclock.Clock) error {
			return storetest.StorageSignups(ctx, db, form, n)
		})
		confirmed := storageRun(b, n, func(ctx context.Context, db *postgres.DB, form *consent.Form, _ *testclock.Clock) error {
			return storetest.StorageConfirmed(ctx, db, form, n)
		})
		settled := storageRun(b, n, func(ctx context.Context, db *postgres.DB, form *consent.Form, clk *testclock.Clock) error {
			return storetest.StorageSettled(ctx, db, form, n, clk)
		})
		b.ReportMetric(imported.grown, "B/imported")
		b.ReportMetric(imported.vacuumed, "B/imported-vacuumed")
		b.ReportMetric(pending.grown, "B/pending")
		b.ReportMetric(pending.vacuumed, "B/pending-vacuumed")
		b.ReportMetric(confirmed.grown, "B/confirmed")
		b.ReportMetric(confirmed.vacuumed, "B/confirmed-vacuumed")
		b.ReportMetric(settled.grown, "B/settled")
		b.ReportMetric(settled.vacuumed, "B/settled-vacuumed")
		b.Logf("%d imported subscribers with one topic:\n%s", n, imported.table)
		b.Logf("%d pending signups:\n%s", n, pending.table)
		b.Logf("%d signups confirmed, their mail sent:\n%s", n, confirmed.table)
		b.Logf("%d signups confirmed, their requests swept:\n%s", n, settled.table)
	}
}

// storageUse is one run's bytes per record: as grown, after VACUUM FULL,
// and the table of where they went.
type storageUse struct {
	grown, vacuumed float64
	table           string
}

// storageRun opens a store on a new database with the newsletter form
// and its topic, writes n records with write, and measures the growth of
// the database's tables with their TOAST and indexes.
func storageRun(b *testing.B, n int, write func(context.Context, *postgres.DB, *consent.Form, *testclock.Clock) error) storageUse {
	b.Helper()
	ctx := context.Background()
	url := pg.EmptyDatabase(b)
	clk := testclock.Real()
	db, err := postgres.Open(ctx, url, postgres.Options{HMACKey: testHMACKey, MessageIDDomain: "mail.shop.example", Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		b.Fatal(err)
	}
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	vacuum := func() {
		if _, err := pool.Exec(ctx, "VACUUM FULL"); err != nil {
			b.Fatal(err)
		}
	}
	vacuum()
	emptyVacuumed := relationSizes(b, pool)
	empty := relationSizes(b, pool)
	if err := write(ctx, db, &form, clk); err != nil {
		b.Fatal(err)
	}
	grown := relationSizes(b, pool)
	vacuum()
	vacuumed := relationSizes(b, pool)

	var sb strings.Builder
	fmt.Fprintf(&sb, "| relation | as grown: table B/record | indexes B/record | after VACUUM FULL: table | indexes |\n|---|---|---|---|---|\n")
	for _, name := range vacuumed.order {
		g, v, e, ev := grown.rel[name], vacuumed.rel[name], empty.rel[name], emptyVacuumed.rel[name]
		if g.table+g.indexes-e.table-e.indexes < int64(n) && v.table+v.indexes-ev.table-ev.indexes < int64(n) {
			continue // under a byte a record
		}
		per := func(a, z int64) float64 { return float64(a-z) / float64(n) }
		fmt.Fprintf(&sb, "| %s | %.0f | %.0f | %.0f | %.0f |\n", name, per(g.table, e.table), per(g.indexes, e.indexes),
			per(v.table, ev.table), per(v.indexes, ev.indexes))
	}
	fmt.Fprintf(&sb, "| all | %.0f | | %.0f | |\n", float64(grown.all-empty.all)/float64(n), float64(vacuumed.all-emptyVacuumed.all)/float64(n))
	fmt.Fprintf(&sb, "\nbytes per entry of each index after VACUUM FULL (its size over its table's rows):\n")
	rows, err := pool.Query(ctx, `SELECT c.relname, a.amname, pg_relation_size(c.oid)::float8 / greatest(t.reltuples, 1)::float8
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am a ON a.oid = c.relam
		JOIN pg_namespace s ON s.oid = t.relnamespace
		WHERE s.nspname = 'public' AND t.reltuples >= $1 ORDER BY 1`, float64(n)/2)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var name, am string
		var per float64
		if err := rows.Scan(&name, &am, &per); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&sb, "- %s (%s): %.1f\n", name, am, per)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return storageUse{
		grown:    float64(grown.all-empty.all) / float64(n),
		vacuumed: float64(vacuumed.all-emptyVacuumed.all) / float64(n),
		table:    sb.String(),
	}
}

// sizes are the bytes of each of the database's tables (with TOAST) and
// of its indexes, and of all.
type sizes struct {
	rel   map[string]struct{ table, indexes int64 }
	order []string // largest first
	all   int64
}

// relationSizes reads the size of every table of the public schema.
func relationSizes(b *testing.B, pool *pgxpool.Pool) sizes {
	b.Helper()
	s := sizes{rel: map[string]struct{ table, indexes int64 }{}}
	rows, err := pool.Query(context.Background(), `SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC, 1`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var name string
		var table, indexes int64
		if err := rows.Scan(&name, &table, &indexes); err != nil {
			b.Fatal(err)
		}
		s.rel[name] = struct{ table, indexes int64 }{table, indexes}
		s.order = append(s.order, name)
		s.all += table + indexes
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return s
}

// TestImportWritesEachSubscriberOnce: the bases an imported new
// subscriber's events prove go in with its row's insert, not in an
// update when the events are appended after it: an import updates no
// subscriber row (an update leaves the row's first version dead in the
// table until vacuum: 262 bytes of table an imported subscriber as
// grown against 149 after VACUUM FULL, before), and the bits are right.
func TestImportWritesEachSubscriberOnce(t *testing.T) {
	ctx := t.Context()
	db, _, pool := newStore(t)
	const n = 300
	if err := storetest.StorageImport(ctx, db, n); err != nil {
		t.Fatal(err)
	}
	// The server's statistics of a table reach the view a moment after
	// the transactions that wrote it.
	var ins, upd int64
	for range 100 {
		if err := pool.QueryRow(ctx, "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'subscribers'").Scan(&ins, &upd); err != nil {
			t.Fatal(err)
		}
		if ins >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ins < n || upd != 0 {
		t.Errorf("subscribers after importing %d: %d rows inserted, %d updated, want %d and 0", n, ins, upd, n)
	}
	var proven int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+subscriptionRows+" WHERE proven = 1").Scan(&proven); err != nil || proven != n {
		t.Errorf("subscriptions proven by consent: got %d, %v, want %d", proven, err, n)
	}
}
