package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"optin/internal/bolt"
	"os"
	"time"

	"github.com/gin-gonic/gin"
)

func runCeiling(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("optin-bench ceiling", flag.ContinueOnError)
	fs.SetOutput(out) // where --help shows the flags
	clients := fs.Int("clients", 64, "concurrent clients / writers")
	dur := fs.Duration("duration", 10*time.Second, "how long each measurement runs")
	dir := fs.String("dir", os.TempDir(), "directory for the scratch bbolt file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := GinNoop(ctx, *clients, *dur)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "gin handler that does nothing (same request as a signup), %d clients:\n%s", *clients, res)
	for _, writers := range []int{1, *clients} {
		n, err := bolt.CommitCeiling(*dir, writers, *dur)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "raw bbolt Update, one fsynced commit per write, %d writers: %.0f commits/s\n", writers, n)
	}
	return nil
}

// GinNoop measures the load generator against a gin server on loopback
// whose handler reads the body and answers 202: the HTTP ceiling.
func GinNoop(ctx context.Context, clients int, d time.Duration) (Result, error) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.POST("/f/:form", func(c *gin.Context) {
		io.Copy(io.Discard, c.Request.Body)
		c.JSON(http.StatusAccepted, gin.H{"status": "pending"})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	l := Load{URLs: []string{"http://" + ln.Addr().String() + "/f/newsletter"}, Clients: clients, For: d,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
		Body: func(w, i int) []byte {
			return fmt.Appendf(nil, `{"email":"n-%d-%d@bench.example","topics":["news"]}`, w, i)
		},
		OK: func(s int) bool { return s == http.StatusAccepted }}
	return l.Run(ctx), nil
}
