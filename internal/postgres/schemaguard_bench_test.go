package postgres_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"optin/internal/postgres"
)

// BenchmarkSchemaCheck measures what the schema guard adds, on one
// connection whose server process's CPU time it reads from /proc: a
// write transaction's lock with and without the read of the schema's
// versions after it (one statement more, in the same round trip), and
// the mail worker's outbox read with and without the guard lock and the
// read before it (two statements more, in the same round trip). It
// reports the server's and this process's CPU per operation. Run it
// with -count=1 several times to alternate the variants.
func BenchmarkSchemaCheck(b *testing.B) {
	url := pg.Database(b)
	db, err := postgres.Open(b.Context(), url, postgres.Options{HMACKey: testHMACKey})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c, err := pgx.Connect(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(b.Context())
	var pid int
	if err := c.QueryRow(b.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		run  func(check bool) error
	}{
		{"write", func(check bool) error { return db.EmptyWrite(b.Context(), c, check) }},
		{"outbox", func(check bool) error { return db.OutboxRead(b.Context(), c, check) }},
	} {
		for _, check := range []bool{false, true} {
			name := v.name + "/unguarded"
			if check {
				name = v.name + "/guarded"
			}
			b.Run(name, func(b *testing.B) {
				server, self := procCPU(b, pid), selfCPU()
				for b.Loop() {
					if err := v.run(check); err != nil {
						b.Fatal(err)
					}
				}
				n := float64(b.N)
				b.ReportMetric(float64(procCPU(b, pid)-server)/n/1e3, "server-µs/op")
				b.ReportMetric(float64(selfCPU()-self)/n/1e3, "client-µs/op")
			})
		}
	}
}

// procCPU returns the user and system CPU time of process pid.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second here).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u+s) * 10 * time.Millisecond
}

// selfCPU returns this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
