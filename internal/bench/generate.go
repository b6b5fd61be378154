package bench

import (
	"flag"
	"fmt"
	"io"
	"time"

	"optin/internal/bench/people"
)

func runGenerate(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("optin-bench generate", flag.ContinueOnError)
	fs.SetOutput(out)
	n := fs.Int("subscribers", 1_000_000, "how many people (rows)")
	format := fs.String("format", "csv", "csv or ndjson")
	seed := fs.Uint64("seed", 1, "picks the data: the same seed, count and --now give the same file")
	nowFlag := fs.String("now", "", "the moment the data is made for, RFC 3339 (default: the start of today, UTC)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(24 * time.Hour)
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return fmt.Errorf("bench: generate: --now: %w", err)
		}
		now = t
	}
	return people.Generate(out, people.Options{Subscribers: *n, Format: *format, Seed: *seed, Now: now})
}
