// Command optin-bench is optin's load generator, kept out of the service
// binary: it drives a running optin over HTTP, can be the SMTP server
// optin sends to, and measures the ceilings to read the results against.
// "optin-bench help" lists its modes; docs/performance.md shows how each
// published figure was measured with it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"optin/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "optin-bench:", err)
		os.Exit(1)
	}
}
