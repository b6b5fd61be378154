package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	optmail "optin/internal/mail"
)

const dkimSynopsis = "optin dkim keygen --domain D --selector S --out FILE [--type rsa|ed25519]"

// dkimCmd runs "optin dkim keygen": it writes a new private key to a file
// of its own (never over an existing one) and prints the DNS TXT record
// that publishes the public key.
func dkimCmd(args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: "+dkimSynopsis)
		return nil
	}
	if len(args) == 0 || args[0] != "keygen" {
		return errors.New("usage: " + dkimSynopsis)
	}
	fs := flag.NewFlagSet("dkim keygen", flag.ContinueOnError)
	domain := fs.String("domain", "", "signing domain (d=): mail.from's domain or a parent of it")
	selector := fs.String("selector", "", "selector (s=), such as s2026")
	out := fs.String("out", "", "file to write the private key to (PEM, mode 0600); must not exist")
	kind := fs.String("type", "rsa", "key type: rsa (2048 bits) or ed25519")
	if err := parseFlags(fs, dkimSynopsis, args[1:], stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *domain == "" || *selector == "" || *out == "" {
		return errors.New("--domain, --selector and --out are required; usage: " + dkimSynopsis)
	}
	pemKey, record, err := optmail.NewDKIMKey(*kind, *domain, *selector)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if _, err := f.Write(pemKey); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "; publish this TXT record, then set mail.dkim.domain: %s, selector: %s, private_key_file: %s\n",
		*domain, *selector, *out)
	fmt.Fprintln(stdout, optmail.ZoneLine(*domain, *selector, record))
	return nil
}
