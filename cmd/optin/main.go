// Command optin is a self-hosted double-opt-in subscription and consent
// service. Run "optin serve" to start it; "optin help" lists the commands.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"optin/internal/app"
	"optin/internal/bench"
	"optin/internal/bolt"
	"optin/internal/config"
	"optin/internal/consent"
)

const usage = `optin: double-opt-in subscriptions with provable consent

usage:
  optin serve [--config FILE]                       run the service
  optin apikey create --name N --role R [--config FILE]
                                                    create an admin API key (admin|marketer|viewer)
  optin verify [--config FILE]                      check the consent ledger's hash chain
  optin bench signup|ceiling|sink ...               load generator and ceilings (optin bench for help)

The config file may also be given with OPTIN_CONFIG. Without any config the
service runs on its embedded defaults (127.0.0.1:8080, ./data, file mail).
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "optin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "apikey":
		if len(args) < 2 || args[1] != "create" {
			return errors.New("usage: optin apikey create --name N --role admin|marketer|viewer")
		}
		return apikeyCreate(ctx, args[2:], stdout)
	case "verify":
		return verify(ctx, args[1:], stdout)
	case "bench":
		return bench.Run(ctx, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// loadConfig parses the --config flag (or OPTIN_CONFIG) and loads it.
func loadConfig(fs *flag.FlagSet, args []string) (config.Config, error) {
	path := fs.String("config", os.Getenv("OPTIN_CONFIG"), "config file (YAML)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return config.Load(*path)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(flag.NewFlagSet("serve", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := app.Open(app.Options{Config: cfg, Log: log, Stdout: stdout,
		BootstrapKey: os.Getenv("OPTIN_BOOTSTRAP_ADMIN_KEY")})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		a.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Serve(ctx, ln)
}

// openDB opens the database directly, for commands run while the service
// is stopped.
func openDB(cfg config.Config) (*bolt.DB, error) {
	db, err := app.OpenStore(cfg)
	if errors.Is(err, bolt.ErrLocked) {
		return nil, fmt.Errorf("%w; stop the service first, or use the admin API", err)
	}
	return db, err
}

func apikeyCreate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	name := fs.String("name", "", "a name for the key, e.g. who uses it")
	role := fs.String("role", "", "admin, marketer or viewer")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *name == "" || !consent.ValidRole(consent.Role(*role)) {
		return errors.New("--name is required and --role must be admin, marketer or viewer")
	}
	db, err := openDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	secret := "optin_" + base64.RawURLEncoding.EncodeToString(b)
	err = db.CreateAPIKey(ctx, consent.APIKey{Hash: consent.HashAPIKey(secret), Name: *name, Role: consent.Role(*role)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", secret)
	return nil
}

func verify(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := loadConfig(flag.NewFlagSet("verify", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	db, err := openDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := db.VerifyLedger(ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("ledger broken after %d good events: %v", rep.Events, rep.Broken)
	}
	fmt.Fprintf(stdout, "ledger ok: %d events, hash chain intact\n", rep.Events)
	return nil
}
