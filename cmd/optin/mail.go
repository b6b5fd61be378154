package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"optin/internal/app"
)

const mailSynopsis = "optin mail test --to ADDR [--config FILE]"

// mailCmd runs "optin mail test": one mail through the configured
// transport, printing the relay's answer, or why the relay refused it.
func mailCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: "+mailSynopsis)
		return nil
	}
	if len(args) == 0 || args[0] != "test" {
		return errors.New("usage: " + mailSynopsis)
	}
	fs := flag.NewFlagSet("mail test", flag.ContinueOnError)
	to := fs.String("to", "", "the address to send the test mail to")
	cfg, err := loadConfig(fs, mailSynopsis, args[1:], stdout)
	if err != nil {
		return err
	}
	if *to == "" {
		return errors.New("--to is required; usage: " + mailSynopsis)
	}
	out, err := app.SendTestMail(ctx, cfg, *to)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, out)
	return nil
}
