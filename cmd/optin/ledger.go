package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"optin/internal/app"
	"optin/internal/consent"
	"optin/internal/ledger"
)

// files is a repeatable flag naming files.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

// expand returns the files named, each directory replaced by the files
// in it (a witness directory), skipping hidden ones.
func (f files) expand() ([]string, error) {
	var out []string
	for _, name := range f {
		st, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, name)
			continue
		}
		entries, err := os.ReadDir(name)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, filepath.Join(name, e.Name()))
			}
		}
	}
	return out, nil
}

// readHeads reads the signed heads in names (head files or receipts),
// each checked against the keys known.
func readHeads(names []string, known note.Verifiers) ([]ledger.Head, error) {
	var heads []ledger.Head
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		msg, err := ledger.HeadNote(data)
		if err == nil {
			var h ledger.Head
			if h, err = ledger.ParseHead(msg, known); err == nil {
				heads = append(heads, h)
				continue
			}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return heads, nil
}

const verifySynopsis = "optin verify [--head FILE]... [--config FILE]"

// verify walks the ledger's hash chain and tree and, with --head, checks
// that the ledger extends each saved head: a head file, a receipt, or a
// directory of them (ledger.witness_dir).
func verify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var headFlags files
	fs.Var(&headFlags, "head", "a saved signed head, a consent receipt, or a directory of them; repeatable")
	cfg, err := loadConfig(fs, verifySynopsis, args, stdout)
	if err != nil {
		return err
	}
	names, err := headFlags.expand()
	if err != nil {
		return err
	}
	var rep consent.LedgerReport
	err = withAdmin(cfg, readOnly, func(c *socketClient) error {
		q := url.Values{}
		if len(names) > 0 {
			var keys []byte
			if err := c.do(ctx, "GET", "/ledger/key", "", nil, &keys); err != nil {
				return fmt.Errorf("the ledger's keys: %w", err)
			}
			known, err := ledger.ParseVerifierKeys(keys)
			if err != nil {
				return err
			}
			heads, err := readHeads(names, known)
			if err != nil {
				return err
			}
			for _, h := range heads {
				q.Add("head", fmt.Sprintf("%d:%s", h.Tree.N, base64.StdEncoding.EncodeToString(h.Tree.Hash[:])))
			}
		}
		return c.do(ctx, "GET", "/ledger/verify?"+q.Encode(), "", nil, &rep)
	})
	if err != nil {
		return err
	}
	if rep.Broken != nil {
		return fmt.Errorf("%w (%d good events before it)", rep.Broken, rep.Events)
	}
	var failed []string
	for _, h := range rep.Heads {
		if !h.OK {
			failed = append(failed, fmt.Sprintf("head of %d events (root %s): %s", h.Size, h.Root, h.Reason))
		}
	}
	if len(failed) > 0 {
		return errors.New("the ledger does not extend saved heads:\n  " + strings.Join(failed, "\n  "))
	}
	fmt.Fprintf(stdout, "ledger ok: %d events, hash chain and tree intact, root %s\n", rep.Events, rep.Root)
	if len(rep.Heads) > 0 {
		fmt.Fprintf(stdout, "extends all %d saved heads\n", len(rep.Heads))
	}
	return nil
}

const receiptUsage = "usage: optin receipt verify RECEIPT --key KEYFILE [--head FILE] [--consistency FILE]"

func receiptCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(receiptUsage)
	}
	switch args[0] {
	case "verify":
		return receiptVerify(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, receiptUsage)
		return nil
	}
	return fmt.Errorf("unknown receipt command %q: use verify", args[0])
}

// receiptVerify checks a consent receipt offline, with the ledger's
// verifier keys from KEYFILE (GET /ledger/key, kept by the person).
func receiptVerify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("receipt verify", flag.ContinueOnError)
	keyFile := fs.String("key", "", "the ledger's verifier keys (GET /ledger/key), required")
	var headFlags, proofFlags files
	fs.Var(&headFlags, "head", "a signed head saved elsewhere that the receipt's head must agree with; repeatable")
	fs.Var(&proofFlags, "consistency", "a consistency proof (GET /ledger/consistency) between a saved head and the receipt's; repeatable")
	synopsis := strings.TrimPrefix(receiptUsage, "usage: ")
	// The receipt may come before the flags or after them.
	if err := parseFlags(fs, synopsis, args, stdout); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return errors.New(receiptUsage)
	}
	path := rest[0]
	if err := parseFlags(fs, synopsis, rest[1:], stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 || *keyFile == "" {
		return errors.New(receiptUsage)
	}
	keys, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	known, err := ledger.ParseVerifierKeys(keys)
	if err != nil {
		return err
	}
	heads, err := readHeads(headFlags, known)
	if err != nil {
		return err
	}
	var proofs []ledger.Consistency
	for _, name := range proofFlags {
		var p ledger.Consistency
		if err := readJSON(name, &p); err != nil {
			return err
		}
		proofs = append(proofs, p)
	}
	var r ledger.Receipt
	if err := readJSON(path, &r); err != nil {
		return err
	}
	check, err := ledger.VerifyReceipt(&r, known, heads, proofs)
	if err != nil {
		return fmt.Errorf("receipt does not verify: %w", err)
	}
	fmt.Fprintf(stdout, "receipt ok: %d events about %s, each in the signed head of %d events (%s, %s)\n",
		check.Events, r.PIIPrincipalID, check.Head.Tree.N, check.Head.Origin, check.Head.Time.Format("2006-01-02 15:04:05Z07:00"))
	return nil
}

// readJSON decodes the JSON file name into v.
func readJSON(name string, v any) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

const ledgerUsage = "usage: optin ledger rotate-key [--config FILE]"

// ledgerCmd runs "optin ledger rotate-key": a new signing key for the
// ledger's heads, the current one kept as retired.
func ledgerCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, ledgerUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "rotate-key" {
		return errors.New(ledgerUsage)
	}
	cfg, err := loadConfig(flag.NewFlagSet("ledger rotate-key", flag.ContinueOnError), ledgerUsage[len("usage: "):], args[1:], stdout)
	if err != nil {
		return err
	}
	if err := app.RotateLedgerKey(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "new ledger key made; restart optin (every instance) to sign with it. Heads signed before stay checkable: GET /ledger/key lists the retired key too.")
	return nil
}
