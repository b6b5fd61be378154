package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/mail"
	"os"
	"strings"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/inbound"
	optmail "optin/internal/mail"
	"optin/internal/token"
)

// dkimSigner returns the signer mail.dkim configures, nil when it
// configures none.
func dkimSigner(cfg config.Config, now func() time.Time) (*optmail.DKIMSigner, error) {
	d := cfg.Mail.DKIM
	if !d.Enabled() {
		return nil, nil
	}
	var keys []optmail.DKIMKey
	for _, k := range append([]config.DKIMKey{{Selector: d.Selector, PrivateKeyFile: d.PrivateKeyFile}}, d.MoreKeys...) {
		pemData, err := os.ReadFile(k.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("mail.dkim: %w", err)
		}
		key, err := optmail.ParseDKIMKey(pemData)
		if err != nil {
			return nil, fmt.Errorf("mail.dkim: %s: %w", k.PrivateKeyFile, err)
		}
		keys = append(keys, optmail.DKIMKey{Domain: d.Domain, Selector: k.Selector, Key: key})
	}
	return optmail.NewDKIMSigner(keys, now)
}

// returnPath returns the VERP return path mail.return_path_domain
// configures, nil when it is empty. Its MAC keys derive from the token
// keys, so every instance on one database makes and accepts the same
// addresses, and a rotated-out token key stops vouching for old bounces.
func returnPath(cfg config.Config, keys []token.Key) (*optmail.ReturnPath, error) {
	if cfg.Mail.ReturnPathDomain == "" {
		return nil, nil
	}
	from, err := mail.ParseAddress(cfg.Mail.From)
	if err != nil {
		return nil, fmt.Errorf("mail.from: %w", err)
	}
	var macKeys [][]byte
	for _, k := range keys {
		m := hmac.New(sha256.New, k.Secret)
		m.Write([]byte("optin return path key"))
		macKeys = append(macKeys, m.Sum(nil))
	}
	return optmail.NewReturnPath(cfg.Mail.ReturnPathDomain, from.Address[strings.LastIndexByte(from.Address, '@')+1:], macKeys)
}

// unsubscribeMailbox is the address mailto: unsubscribes go to: the
// inbound listener's, when it runs.
func unsubscribeMailbox(cfg config.Config) string {
	if cfg.Mail.Inbound.Listen == "" {
		return ""
	}
	return inbound.UnsubscribeLocal + "@" + cfg.Mail.ReturnPathDomain
}

// softBouncePolicy is mail.inbound.soft_bounces as consent takes it.
func softBouncePolicy(cfg config.Config) consent.SoftBouncePolicy {
	r := cfg.Mail.Inbound.SoftBounces
	return consent.SoftBouncePolicy{Limit: r.N, Window: r.Per}
}
