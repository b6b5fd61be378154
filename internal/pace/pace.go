// Package pace runs the stores' housekeeping walks (the request sweep,
// forgetting opt-outs) so that they yield to the service's real work.
package pace

import (
	"context"
	"time"
)

// Walk runs a housekeeping walk: read returns the candidates of one read
// and whether the walk is over; apply handles up to chunk of them per
// write transaction. It rests three times as long as each read took, so a
// walk over a big database does not take a core, or the database, from
// the signups and the outbox for seconds on end. It returns how many
// apply handled.
func Walk[T any](ctx context.Context, chunk int, read func() ([]T, bool, error), apply func(context.Context, []T) (int, error)) (int, error) {
	total := 0
	for {
		start := time.Now()
		items, done, err := read()
		if err != nil {
			return total, err
		}
		rest := time.NewTimer(3 * time.Since(start))
		for len(items) > 0 {
			part := items[:min(len(items), chunk)]
			items = items[len(part):]
			n, err := apply(ctx, part)
			total += n
			if err != nil {
				rest.Stop()
				return total, err
			}
		}
		if done {
			rest.Stop()
			return total, nil
		}
		select {
		case <-ctx.Done():
			rest.Stop()
			return total, ctx.Err()
		case <-rest.C:
		}
	}
}
