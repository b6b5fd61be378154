package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"

	"optin/internal/config"
	"optin/internal/consent"
)

// campaignCmd runs "optin campaign ...".
func campaignCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: "+campaignSynopsis)
		return nil
	}
	if len(args) < 1 || args[0] != "status" {
		return errors.New("usage: " + campaignSynopsis)
	}
	return campaignStatus(ctx, args[1:], stdout, stderr)
}

const campaignSynopsis = "optin campaign status [--config FILE] [--interval D] ID"

// campaignStatus shows a campaign's progress: a bar of first mails sent
// out of recipients targeted so far, redrawn while the campaign runs
// (polling the service through its admin socket), then the counts. With
// the service stopped it reads the database once.
func campaignStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("campaign status", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("OPTIN_CONFIG"), "config file (YAML)")
	interval := fs.Duration("interval", time.Second, "how often to poll a running campaign")
	if err := parseFlags(fs, campaignSynopsis, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 || *interval <= 0 {
		return errors.New("usage: " + campaignSynopsis)
	}
	id := fs.Arg(0)
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	fetch := func() (camp *consent.Campaign, live bool, err error) {
		camp = new(consent.Campaign)
		err = withAdmin(cfg, readOnly, func(c *socketClient) error {
			live = c.running
			return c.do(ctx, "GET", "/campaigns/"+url.PathEscape(id), "", nil, camp)
		})
		return camp, live, err
	}
	camp, live, err := fetch()
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions(max(camp.Counts.Targeted, 1), progressbar.OptionSetWriter(stderr),
		progressbar.OptionShowCount(), progressbar.OptionSetDescription("sent"),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
	for {
		bar.ChangeMax(max(camp.Counts.Targeted, 1))
		_ = bar.Set(camp.Counts.Sent)
		bar.Describe(fmt.Sprintf("%s: sent", camp.State))
		if !live || camp.State != consent.CampaignRunning {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*interval):
		}
		if camp, live, err = fetch(); err != nil {
			return err
		}
	}
	_ = bar.Exit()
	fmt.Fprintln(stderr)
	printCampaign(stdout, camp)
	return nil
}

// printCampaign prints a campaign's state and counts.
func printCampaign(w io.Writer, c *consent.Campaign) {
	n := c.Counts
	fmt.Fprintf(w, "campaign %s (%s), topic %s: %s\n", c.ID, c.Name, c.Topic, c.State)
	fmt.Fprintf(w, "targeted %d  sent %d  reminded %d  reconfirmed %d  unsubscribed %d  lapsed %d  failed %d  dropped %d  withheld %d\n",
		n.Targeted, n.Sent, n.Reminded, n.Reconfirmed, n.Unsubscribed, n.Lapsed, n.Failed, n.Dropped, n.Withheld)
	if len(n.Excluded) > 0 {
		fmt.Fprint(w, "excluded:")
		for _, r := range slices.Sorted(maps.Keys(n.Excluded)) {
			fmt.Fprintf(w, "  %s %d", r, n.Excluded[r])
		}
		fmt.Fprintln(w)
	}
}
