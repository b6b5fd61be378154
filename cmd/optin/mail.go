package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"optin/internal/app"
)

const mailUsage = "usage: optin mail test --to ADDR [--config FILE]"

// mailCmd runs "optin mail test": one mail through the configured
// transport, printing the relay's answer, or why the relay refused it.
func mailCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		return errors.New(mailUsage)
	}
	fs := flag.NewFlagSet("mail test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, mailUsage+"\n\nSends one test mail through the configured transport and prints the relay's answer.")
		fs.PrintDefaults()
	}
	to := fs.String("to", "", "the address to send the test mail to")
	cfg, err := loadConfig(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if *to == "" {
		return errors.New("--to is required; " + mailUsage)
	}
	out, err := app.SendTestMail(ctx, cfg, *to)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, out)
	return nil
}
