// Command optin is a self-hosted double-opt-in subscription and consent
// service. Run "optin serve" to start it; "optin help" lists the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"optin/internal/app"
	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/transfer"
)

const usage = `optin: double-opt-in subscriptions with provable consent

usage:
  optin serve [--config FILE]                       run the service
  optin apikey create --name N --role admin|marketer|viewer [--config FILE]
                                                    create an API key
  optin apikey list [--config FILE]                 list API keys
  optin apikey revoke --id ID [--config FILE]       revoke an API key
  optin verify [--head FILE]... [--config FILE]     check the consent ledger's hash chain and tree,
                                                    and that it extends saved heads
  optin receipt verify RECEIPT --key KEYFILE [--head FILE] [--consistency FILE]
                                                    check a consent receipt offline
  optin ledger rotate-key [--config FILE]           make a new key for the ledger's heads (the old one
                                                    stays to check older heads); restart optin after
  optin counters rebuild [--check] [--config FILE]  recount the counters the overview reads
                                                    (--check: only compare them with a full walk)
  optin import [--format csv|ndjson] [--no-notice] [--config FILE] FILE
                                                    import subscribers (docs/cli.md)
  optin campaign status [--config FILE] [--interval D] ID
                                                    show a reawaken campaign's progress
  optin mail test --to ADDR [--config FILE]         send a test mail through the configured transport
  optin migrate status [--config FILE]              show the store's schema version
  optin migrate --to postgres [--config FILE]       copy the bbolt database into PostgreSQL
  optin dkim keygen --domain D --selector S --out FILE [--type rsa|ed25519]
                                                    make a DKIM key and print its DNS record
  optin bench ...                                   the load generator is its own command,
                                                    optin-bench (go run ./cmd/optin-bench help)
  optin version                                     show what this binary was built from

"optin COMMAND --help" shows a command's flags.

The config file may also be given with OPTIN_CONFIG. Without any config the
service runs on its embedded defaults (127.0.0.1:8080, ./data, file mail).
apikey, verify, counters, import and campaign act on the running service through its admin
socket (data_dir/socket/admin.sock); when the service is stopped they open the
database file themselves.
`

// benchMoved says where the load generator went.
const benchMoved = `usage: optin-bench signup|ceiling|sink|generate ... (the load generator is its own
command, so the service binary carries none of it: go run ./cmd/optin-bench help)`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "optin:", err)
		os.Exit(1)
	}
}

// run runs the command in args. A command asked for its usage (-h,
// --help) shows it and succeeds.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := command(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "apikey":
		if len(args) < 2 {
			return errors.New(apikeyUsage)
		}
		switch args[1] {
		case "create":
			return apikeyCreate(ctx, args[2:], stdout, stderr)
		case "list":
			return apikeyList(ctx, args[2:], stdout)
		case "revoke":
			return apikeyRevoke(ctx, args[2:], stdout)
		case "help", "-h", "--help":
			fmt.Fprintln(stdout, apikeyUsage)
			return nil
		}
		return fmt.Errorf("unknown apikey command %q: use create, list or revoke", args[1])
	case "verify":
		return verify(ctx, args[1:], stdout)
	case "receipt":
		return receiptCmd(args[1:], stdout)
	case "ledger":
		return ledgerCmd(ctx, args[1:], stdout)
	case "counters":
		if len(args) < 2 || args[1] != "rebuild" {
			if len(args) == 2 && (args[1] == "help" || args[1] == "-h" || args[1] == "--help") {
				fmt.Fprintln(stdout, countersUsage)
				return nil
			}
			return errors.New(countersUsage)
		}
		return countersRebuild(ctx, args[2:], stdout)
	case "import":
		return importFile(ctx, args[1:], stdout, stderr)
	case "campaign":
		return campaignCmd(ctx, args[1:], stdout, stderr)
	case "mail":
		return mailCmd(ctx, args[1:], stdout)
	case "migrate":
		return migrateCmd(ctx, args[1:], stdout)
	case "dkim":
		return dkimCmd(args[1:], stdout)
	case "bench":
		// The load generator and SMTP sink stay out of the service binary.
		fmt.Fprintln(stdout, benchMoved)
		if len(args) == 2 && (args[1] == "-h" || args[1] == "--help" || args[1] == "help") {
			return nil
		}
		return errors.New("bench is not part of the service binary; run optin-bench")
	case "version":
		return version(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

const apikeyUsage = "usage: optin apikey create|list|revoke [flags] (\"optin apikey create --help\" shows the flags)"

// parseFlags parses args with fs. Asked for help (-h, --help), it shows
// synopsis and fs's flags on stdout and returns flag.ErrHelp; other errors
// are returned unprinted, for main to print once.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: %s\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	return err
}

// loadConfig parses the --config flag (or OPTIN_CONFIG) and loads it.
func loadConfig(fs *flag.FlagSet, synopsis string, args []string, stdout io.Writer) (config.Config, error) {
	path := fs.String("config", os.Getenv("OPTIN_CONFIG"), "config file (YAML)")
	if err := parseFlags(fs, synopsis, args, stdout); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return config.Load(*path)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(flag.NewFlagSet("serve", flag.ContinueOnError), "optin serve [--config FILE]", args, stdout)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	collectLessOften()
	// Bind first: a first start that cannot listen must not use up the
	// admin key it prints once.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	a, err := app.Open(app.Options{Config: cfg, Log: log, Stdout: stdout,
		BootstrapKey: os.Getenv("OPTIN_BOOTSTRAP_ADMIN_KEY")})
	if err != nil {
		ln.Close()
		return err
	}
	if addr := os.Getenv("OPTIN_PPROF"); addr != "" {
		// Profiling for performance work: Go's pprof handlers on their own
		// listener, never on the service's port.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		log.Info("pprof listening", "addr", addr)
		go func() { log.Warn("pprof stopped", "err", http.ListenAndServe(addr, mux)) }()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Serve(ctx, ln)
}

// apikeyCreate prints the new key's secret alone on stdout, for scripts,
// and its id (for apikey list and revoke) on stderr.
func apikeyCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	name := fs.String("name", "", "a name for the key, e.g. who uses it")
	role := fs.String("role", "", "admin, marketer or viewer")
	cfg, err := loadConfig(fs, "optin apikey create --name N --role R [--config FILE]", args, stdout)
	if err != nil {
		return err
	}
	if *name == "" || !consent.ValidRole(consent.Role(*role)) {
		return errors.New("--name is required and --role must be admin, marketer or viewer")
	}
	var secret string
	var info consent.APIKeyInfo
	err = withAdmin(cfg, readWrite, func(c *socketClient) error {
		var out struct {
			Key  string
			Info consent.APIKeyInfo
		}
		err := c.do(ctx, "POST", "/apikeys", "application/json", jsonBody(map[string]string{"name": *name, "role": *role}), &out)
		secret, info = out.Key, out.Info
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "created %s key %s (%s); shown only this once:\n", info.Role, info.ID, info.Name)
	fmt.Fprintf(stdout, "%s\n", secret)
	return nil
}

func apikeyList(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := loadConfig(flag.NewFlagSet("apikey list", flag.ContinueOnError), "optin apikey list [--config FILE]", args, stdout)
	if err != nil {
		return err
	}
	var keys []consent.APIKeyInfo
	err = withAdmin(cfg, readOnly, func(c *socketClient) error {
		var out struct{ Items []consent.APIKeyInfo }
		err := c.do(ctx, "GET", "/apikeys", "", nil, &out)
		keys = out.Items
		return err
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		state := "live"
		if !k.Revoked.IsZero() {
			state = "revoked " + k.Revoked.Format(time.RFC3339)
		}
		used := "never used"
		if !k.LastUsed.IsZero() {
			used = "last used " + k.LastUsed.Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%s  %-8s  %-20s  %s, %s\n", k.ID, k.Role, k.Name, used, state)
	}
	return nil
}

func apikeyRevoke(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("apikey revoke", flag.ContinueOnError)
	id := fs.String("id", "", "the key's id, as apikey list shows it")
	cfg, err := loadConfig(fs, "optin apikey revoke --id ID [--config FILE]", args, stdout)
	if err != nil {
		return err
	}
	if *id == "" {
		return errors.New("--id is required")
	}
	err = withAdmin(cfg, readWrite, func(c *socketClient) error {
		return c.do(ctx, "DELETE", "/apikeys/"+url.PathEscape(*id), "", nil, nil)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s\n", *id)
	return nil
}

const countersUsage = "usage: optin counters rebuild [--check] [--config FILE]"

// countersRebuild recounts the counters Stats reads from a full walk, or
// with --check only compares them and fails when any differs.
func countersRebuild(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("counters rebuild", flag.ContinueOnError)
	check := fs.Bool("check", false, "only compare the counters with a full walk; exit 1 when they differ")
	cfg, err := loadConfig(fs, countersUsage[len("usage: "):], args, stdout)
	if err != nil {
		return err
	}
	method, path := "POST", "/counters/rebuild"
	if *check {
		method, path = "GET", "/counters/check"
	}
	var out struct{ Differences []consent.CounterDiff }
	err = withAdmin(cfg, *check, func(c *socketClient) error { return c.do(ctx, method, path, "", nil, &out) })
	if err != nil {
		return err
	}
	for _, d := range out.Differences {
		fmt.Fprintln(stdout, d)
	}
	switch {
	case *check && len(out.Differences) > 0:
		return fmt.Errorf("%d counters differ from a full walk; run optin counters rebuild", len(out.Differences))
	case *check:
		fmt.Fprintln(stdout, "counters ok: they match a full walk")
	default:
		fmt.Fprintf(stdout, "counters rebuilt from a full walk; %d corrected\n", len(out.Differences))
	}
	return nil
}

// collectLessOften sets GC to 400% unless GOGC is set: the service
// allocates short-lived garbage per request and per mail, and collecting
// less often measured 40% more mails a second (docs/performance.md); an
// import opening the database itself allocates the same way per row.
func collectLessOften() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// importMemoryLimit is the soft limit of an import's Go memory (see
// limitImportMemory).
const importMemoryLimit = 768 << 20

// limitImportMemory sets a soft limit on the Go memory of an import that
// opens the database itself, unless GOMEMLIMIT is set. What stays alive
// grows with the transaction and, slowly, with the database: the pages
// one transaction of 20000 rows dirties (most of them in the random-keyed
// indexes, each page's entries read into memory when a row lands on it)
// and bbolt's record of which transaction allocated each reused page, a
// map that grows with the file. At 160 MiB, the limit before, the
// collector ran almost without pause once the database passed a few
// million subscribers, and the CPU a row doubled from the first million
// to the tenth (10M rows: 954 s of CPU against 622 s at 768 MiB with the
// same transactions, docs/performance.md). The limit keeps memory flat
// however long the file: the anonymous memory stays under it (747 MB
// at most, sampled each 10 s, in a 10M-row import). A smaller
// GOMEMLIMIT works too, at more CPU.
func limitImportMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(importMemoryLimit)
	}
}

// importFile imports a CSV or NDJSON file, showing a progress bar on
// stderr, and prints the report as JSON.
func importFile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	format := fs.String("format", "", "csv or ndjson (default: from the file name)")
	path := fs.String("config", os.Getenv("OPTIN_CONFIG"), "config file (YAML)")
	noNotice := fs.Bool("no-notice", false, "send no information notice (GDPR Art. 14) to the people imported on soft_opt_in or legitimate_interest: you told them otherwise")
	const synopsis = "optin import [--format csv|ndjson] [--no-notice] [--config FILE] FILE"
	if err := parseFlags(fs, synopsis, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: " + synopsis)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	file := fs.Arg(0)
	if *format == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".csv":
			*format = transfer.FormatCSV
		case ".ndjson", ".jsonl":
			*format = transfer.FormatNDJSON
		default:
			return errors.New("cannot tell the format from the file name; give --format csv or ndjson")
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	collectLessOften()
	limitImportMemory()
	size := int64(-1)
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(stderr), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("importing"), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
	body := io.TeeReader(f, bar)
	query := "/imports?format=" + *format
	if *noNotice {
		query += "&notice=false"
	}
	var rep consent.ImportReport
	err = withAdmin(cfg, readWrite, func(c *socketClient) error {
		return c.do(ctx, "POST", query, "", body, &rep)
	})
	_ = bar.Finish()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
