package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
	optmail "optin/internal/mail"
)

// SendTestMail sends one mail to the address to through the configured
// transport, for "optin mail test", and says what became of it: the
// relay's answer, or the file the file transport wrote. A relay that
// refuses the configuration gives a *mail.ConfigError. It opens no
// database, so it works while the service runs.
func SendTestMail(ctx context.Context, cfg config.Config, to string) (string, error) {
	addr, err := consent.ParseAddress(to)
	if err != nil {
		return "", fmt.Errorf("--to: %s", consent.ErrorMessage(err))
	}
	m, err := optmail.ProbeMessage(cfg.Mail.From, addr.Addr, rand.Reader)
	if err != nil {
		return "", err
	}
	msg, err := optmail.Build(cfg.Mail.From, m, time.Now())
	if err != nil {
		return "", err
	}
	// Signed as the outbox signs, so the test shows whether receivers
	// find the DKIM key.
	signer, err := dkimSigner(cfg, time.Now)
	if err != nil {
		return "", err
	}
	if signer != nil {
		if err := signer.Sign(msg); err != nil {
			return "", err
		}
	}
	if cfg.Mail.Transport != config.TransportSMTP {
		ft := &optmail.FileTransport{Dir: filepath.Join(cfg.DataDir, "mail")}
		if err := ft.Send(ctx, msg, m); err != nil {
			return "", err
		}
		return fmt.Sprintf("mail.transport is %q: the test mail to %s was written to %s, not sent",
			cfg.Mail.Transport, addr.Addr, ft.Path(m.MessageID)), nil
	}
	tr, err := newSMTPTransport(cfg.Mail.SMTP, nil)
	if err != nil {
		return "", err
	}
	defer tr.Close()
	reply, err := tr.SendTest(ctx, msg)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("the relay %s:%d accepted the test mail to %s: %s", cfg.Mail.SMTP.Host, cfg.Mail.SMTP.Port,
		addr.Addr, reply), nil
}
