// Package config loads, defaults and validates the optin configuration.
//
// Settings are resolved in this order, later sources winning: built-in
// defaults (see Default), the YAML file, then OPTIN_* environment variables.
// The result is validated as a whole and every problem is reported at once.
package config

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"optin/internal/consent"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// day is the length of the "d" unit accepted by Duration.
const day = 24 * time.Hour

// Limits on durations and keys enforced by Validate.
const (
	minConfirmTTL     = time.Hour
	maxConfirmTTL     = 30 * day
	minUnsubscribeTTL = 60 * day // CASL: unsubscribe must keep working for 60 days
	minKeyBytes       = 32
	maxKeyIDLen       = 32
)

// Transport and TLS mode names accepted in the configuration.
const (
	TransportFile = "file"
	TransportSMTP = "smtp"

	StoreBolt     = "bolt"
	StorePostgres = "postgres"

	TLSMandatory = "mandatory"
	TLSStartTLS  = "starttls"
	TLSNone      = "none"
)

// Config is the complete optin configuration.
type Config struct {
	Listen  string `yaml:"listen"`   // default "127.0.0.1:8080"
	BaseURL string `yaml:"base_url"` // default "http://" + Listen when Listen's host is loopback; otherwise required
	DataDir string `yaml:"data_dir"` // default "./data"
	// Store is where optin keeps its data: "bolt" (default), one file in
	// data_dir for one process; or "postgres", a PostgreSQL database
	// that several instances share.
	Store          string      `yaml:"store"`
	Postgres       Postgres    `yaml:"postgres"`
	TrustedProxies []string    `yaml:"trusted_proxies"` // IPs or CIDRs; default none (client IP = TCP peer)
	Mail           Mail        `yaml:"mail"`
	Tokens         Tokens      `yaml:"tokens"`
	Lifecycle      Lifecycle   `yaml:"lifecycle"`
	Pending        Pending     `yaml:"pending"`
	Retention      Retention   `yaml:"retention"`
	Notices        Notices     `yaml:"notices"`
	Preferences    Preferences `yaml:"preferences"`
	Limits         Limits      `yaml:"limits"`
	Brand          Brand       `yaml:"brand"`
	Scanners       Scanners    `yaml:"scanners"`
	Ledger         Ledger      `yaml:"ledger"`
	// ShutdownGrace bounds a shutdown: requests in flight and mails being
	// sent get this long, then they are cut off (the mails stay queued);
	// default 10s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
}

// Postgres configures the PostgreSQL store.
type Postgres struct {
	// URL is the database's connection URL,
	// postgres://user@host:port/database?sslmode=verify-full (env
	// OPTIN_POSTGRES_URL). The password may only come from the
	// environment: in OPTIN_POSTGRES_URL, PGPASSWORD or a .pgpass file.
	URL string `yaml:"url"`
	// OutboxLease is how long an instance's mail worker holds the jobs it
	// took before another instance may take them over: the wait before a
	// crashed instance's mails go out. It must outlast sending one batch.
	// Default 5m; at least 10s.
	OutboxLease Duration `yaml:"outbox_lease"`
}

// Mail configures how outgoing mail is sent.
type Mail struct {
	Transport     string `yaml:"transport"`      // "file" (default) | "smtp"
	From          string `yaml:"from"`           // default "optin <optin@localhost>"; must parse with net/mail.ParseAddress
	PostalAddress string `yaml:"postal_address"` // sender's postal address shown in marketing mail; default ""
	SMTP          SMTP   `yaml:"smtp"`
	// DKIM makes optin sign its mail itself; empty leaves signing to the
	// relay.
	DKIM DKIM `yaml:"dkim"`
	// ReturnPathDomain, when set, gives every mail a VERP envelope sender
	// at this domain (b-ID-MAC@domain), so a bounce names the mail and the
	// address; default empty (the envelope sender is mail.from).
	ReturnPathDomain string  `yaml:"return_path_domain"`
	Inbound          Inbound `yaml:"inbound"`
}

// DKIM configures DKIM signing (RFC 6376).
type DKIM struct {
	Domain         string `yaml:"domain"`           // d=, mail.from's domain or a parent of it (DMARC alignment)
	Selector       string `yaml:"selector"`         // s=; the key is published at selector._domainkey.domain
	PrivateKeyFile string `yaml:"private_key_file"` // PEM, RSA of 2048 bits or more, or Ed25519
	// MoreKeys are further keys of the same domain; each signs too (key
	// rotation, or RSA beside Ed25519).
	MoreKeys []DKIMKey `yaml:"more_keys"`
}

// DKIMKey is one further DKIM key.
type DKIMKey struct {
	Selector       string `yaml:"selector"`
	PrivateKeyFile string `yaml:"private_key_file"`
}

// Enabled reports whether DKIM signing is configured.
func (d DKIM) Enabled() bool { return d.Domain != "" || d.Selector != "" || d.PrivateKeyFile != "" }

// Inbound configures the inbound SMTP listener for bounces, complaints and
// mailto: unsubscribes.
type Inbound struct {
	// Listen is the listener's address, such as "0.0.0.0:25"; empty (the
	// default) runs none. It needs mail.return_path_domain.
	Listen string `yaml:"listen"`
	// SoftBounces suppresses an address after N soft bounces within the
	// duration; default "5/30d"; "off" never does.
	SoftBounces Rate `yaml:"soft_bounces"`
}

// SMTP configures the SMTP transport.
type SMTP struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"` // default by TLS mode: mandatory 465, starttls 587, none 25
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	TLS      string `yaml:"tls"` // "mandatory" (implicit TLS, SMTPS) | "starttls" (STARTTLS required) | "none"; default "starttls"
	// CAFile is a PEM file of the CA certificates that may sign the
	// relay's certificate, trusted besides the system's; default none.
	CAFile string `yaml:"ca_file"`
	// Helo is the name optin gives in EHLO (RFC 5321 4.1.1.1: a domain
	// name or an address literal); default the machine's host name.
	Helo string `yaml:"helo"`
}

// Tokens configures the signed confirm and unsubscribe tokens.
type Tokens struct {
	ConfirmTTL     Duration `yaml:"confirm_ttl"`     // default 72h; must be between 1h and 30d
	UnsubscribeTTL Duration `yaml:"unsubscribe_ttl"` // default 365d; must be >= 60d (CASL minimum)
	Keys           []Key    `yaml:"keys"`            // optional; when empty the service generates keys into data_dir
}

// Key is one token signing key.
type Key struct {
	ID     string `yaml:"id"`     // ^[A-Za-z0-9_-]{1,32}$, unique
	Secret string `yaml:"secret"` // base64 (std or url alphabet, padded or not) of >= 32 bytes
}

// Lifecycle configures how subscriptions age.
type Lifecycle struct {
	DormantAfter Duration `yaml:"dormant_after"` // default 365d
	// CustomerActivities are the activity kinds that make a customer
	// (default purchase and reservation); the others (enquiry, login,
	// note) are recorded in the person's trail only.
	CustomerActivities []string `yaml:"customer_activities"`
}

// Ledger configures where the consent ledger's signed heads go.
type Ledger struct {
	// WitnessDir, when set, receives a copy of each signed tree head
	// (one file per head): a directory on another disk or host than the
	// database, so that a later rewrite of the ledger meets a head the
	// operator cannot quietly change. Default none.
	WitnessDir string `yaml:"witness_dir"`
}

// Retention configures how long optin keeps personal data it no longer
// needs (GDPR Art. 5(1)(e)).
type Retention struct {
	// OptedOut is how long a person who unsubscribed from everything, or
	// whose every subscription lapsed, is kept before their personal data
	// goes; the suppression hash and the ledger's digests stay. Default 30d.
	OptedOut Duration `yaml:"opted_out"`
}

// Notices configures the information owed to people whose data optin
// did not get from them.
type Notices struct {
	// Art14Within is how long after an import the information notice to
	// a person imported on soft opt-in or legitimate interest may go out
	// at the latest (GDPR Art. 14(3)); default 72h, at most 30d.
	Art14Within Duration `yaml:"art14_within"`
}

// Preferences configures the preference page.
type Preferences struct {
	// Channels are the optional channels (sms, phone, post) the page
	// offers for each topic beside email; default none. A channel a
	// person holds is always shown, so it can be taken back.
	Channels []string `yaml:"channels"`
}

// PreferenceChannels returns preferences.channels, checked by Validate.
func (c *Config) PreferenceChannels() []consent.Channel {
	chs, _ := consent.ParseChannels(c.Preferences.Channels)
	return chs
}

// Pending configures unconfirmed subscription requests.
type Pending struct {
	Retention Duration `yaml:"retention"` // default 7d: pending requests are deleted this long after their confirm link expired
}

// Limits configures per-client rate limits.
type Limits struct {
	SignupPerIP Rate `yaml:"signup_per_ip"` // default "20/10m"
	ManagePerIP Rate `yaml:"manage_per_ip"` // default "5/10m"
	// Confirmations is the global brake on confirmation mails queued by
	// signups, whoever sends them; default "100/2s" (50 a second, bursts
	// of 100). Signups over it get 429 with Retry-After.
	Confirmations Rate `yaml:"confirmations"`
}

// Scanners configures how optin tells mail security scanners, which open
// and may submit every link of a mail on delivery, from people when a
// confirmation or "keep me subscribed" button is pressed.
type Scanners struct {
	// Window is how long after the mail left a click counts as soon,
	// when scanners open links; default 2m.
	Window Duration `yaml:"window"`
	// Networks are CIDRs (or addresses) of scanners, added to the
	// embedded list of the big gateways' published ranges.
	Networks []string `yaml:"networks"`
	// Suspected is what happens to a click suspected to be automated:
	// "hold" (default: it changes nothing and the link keeps working) or
	// "accept" (it counts, flagged by its class).
	Suspected string `yaml:"suspected"`
}

// Values of scanners.suspected.
const (
	SuspectedHold   = "hold"
	SuspectedAccept = "accept"
)

// ScannerNetworks returns scanners.networks as prefixes (validated).
func (s Scanners) ScannerNetworks() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s.Networks))
	for _, n := range s.Networks {
		if p, err := parseProxy(n); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (s Scanners) validate() []error {
	var errs []error
	if s.Window <= 0 || time.Duration(s.Window) > day {
		errs = append(errs, fmt.Errorf("scanners.window: must be positive and at most 1d: %s", s.Window))
	}
	for i, n := range s.Networks {
		if _, err := parseProxy(n); err != nil {
			errs = append(errs, fmt.Errorf("scanners.networks[%d]: %q is not an IP address or CIDR: %w", i, n, err))
		}
	}
	if s.Suspected != SuspectedHold && s.Suspected != SuspectedAccept {
		errs = append(errs, fmt.Errorf("scanners.suspected: must be %q or %q: %q", SuspectedHold, SuspectedAccept, s.Suspected))
	}
	return errs
}

// Default returns the built-in configuration. It is valid as is.
func Default() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		BaseURL: "http://127.0.0.1:8080",
		DataDir: "./data",
		Store:   StoreBolt,
		Mail: Mail{
			Transport: TransportFile,
			From:      "optin <optin@localhost>",
			SMTP: SMTP{
				Port: 587,
				TLS:  TLSStartTLS,
			},
			Inbound: Inbound{SoftBounces: Rate{N: 5, Per: 30 * day}},
		},
		Tokens: Tokens{
			ConfirmTTL:     Duration(72 * time.Hour),
			UnsubscribeTTL: Duration(365 * day),
		},
		Lifecycle: Lifecycle{DormantAfter: Duration(365 * day), CustomerActivities: []string{"purchase", "reservation"}},
		Pending:   Pending{Retention: Duration(7 * day)},
		Retention: Retention{OptedOut: Duration(30 * day)},
		Notices:   Notices{Art14Within: Duration(consent.DefaultNoticeWithin)},
		Limits: Limits{
			SignupPerIP:   Rate{N: 20, Per: 10 * time.Minute},
			ManagePerIP:   Rate{N: 5, Per: 10 * time.Minute},
			Confirmations: Rate{N: 100, Per: 2 * time.Second},
		},
		Scanners:      Scanners{Window: Duration(2 * time.Minute), Suspected: SuspectedHold},
		ShutdownGrace: Duration(10 * time.Second),
	}
}

// Load reads the YAML file at path, applies OPTIN_* environment overrides
// and validates the result. An empty path means no file: the defaults plus
// environment overrides are validated and returned.
func Load(path string) (Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookup func(string) (string, bool)) (Config, error) {
	if path == "" {
		return parse(strings.NewReader(""), "defaults", lookup)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return parse(bytes.NewReader(data), path, lookup)
}

// Parse decodes YAML from r onto the defaults, applies OPTIN_* environment
// overrides and validates the result. name (usually the file name) prefixes
// decoding errors. Unknown keys are errors; an empty document means defaults.
func Parse(r io.Reader, name string) (Config, error) {
	return parse(r, name, os.LookupEnv)
}

func parse(r io.Reader, name string, lookup func(string) (string, bool)) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c := Default()
	// Derived defaults are recomputed by Validate from the final listen
	// address and TLS mode, so clear them before the file can set them.
	c.BaseURL = ""
	c.Mail.SMTP.Port = 0
	if err := decode(data, name, &c); err != nil {
		return Config{}, err
	}
	if u, err := url.Parse(c.Postgres.URL); err == nil && urlHoldsPassword(u) {
		return Config{}, fmt.Errorf("%s: postgres.url: must not hold the password; give it in OPTIN_POSTGRES_URL, PGPASSWORD or a .pgpass file", name)
	}
	envErr := applyEnv(&c, lookup)
	// "key: []" and an absent key mean the same.
	if len(c.TrustedProxies) == 0 {
		c.TrustedProxies = nil
	}
	if len(c.Scanners.Networks) == 0 {
		c.Scanners.Networks = nil
	}
	if len(c.Tokens.Keys) == 0 {
		c.Tokens.Keys = nil
	}
	if len(c.Preferences.Channels) == 0 {
		c.Preferences.Channels = nil
	}
	if err := errors.Join(envErr, c.Validate()); err != nil {
		return Config{}, fmt.Errorf("%s: invalid configuration:\n%w", name, err)
	}
	return c, nil
}

// decode strictly decodes the single YAML document in data onto c. Every
// unknown key and every value that does not fit its key is an error naming
// the line and the key path (e.g. "mail.smtp.port"); all are reported.
func decode(data []byte, name string, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil // empty file: defaults
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return fmt.Errorf("%s: line %d: only one YAML document is allowed", name, extra.Line)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("%s: %w", name, err)
	}
	if errs := checkNode(&doc, reflect.TypeFor[Config](), ""); len(errs) > 0 {
		for i, e := range errs {
			errs[i] = fmt.Errorf("%s: %w", name, e)
		}
		return errors.Join(errs...)
	}
	if err := doc.Decode(c); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkNode checks node n of a YAML document against t, the type it is
// decoded into, and returns an error for every key t lacks and every value
// that does not fit, each naming its line and key path; path is n's key
// path. An empty value fits anything: the key keeps its default.
func checkNode(n *yaml.Node, t reflect.Type, path string) []error {
	switch {
	case n.Kind == yaml.AliasNode:
		return checkNode(n.Alias, t, path)
	case n.Kind == yaml.DocumentNode:
		var errs []error
		for _, c := range n.Content {
			errs = append(errs, checkNode(c, t, path)...)
		}
		return errs
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil
	case reflect.PointerTo(t).Implements(unmarshalerType):
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return []error{nodeError(n, path, err)}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return []error{nodeError(n, path, errors.New("want a mapping of keys"+got(n)))}
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				errs = append(errs, checkMerge(v, t, path)...)
				continue
			}
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			f, ok := fieldByKey(t, k.Value)
			if !ok {
				errs = append(errs, nodeError(k, p, errors.New("unknown key")))
				continue
			}
			errs = append(errs, checkNode(v, f.Type, p)...)
		}
		return errs
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return []error{nodeError(n, path, errors.New("want a list"+got(n)))}
		}
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		want := "want a text value"
		switch t.Kind() {
		case reflect.Bool:
			want = "want true or false"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "want a whole number"
		case reflect.Float32, reflect.Float64:
			want = "want a number"
		}
		return []error{nodeError(n, path, errors.New(want+got(n)))}
	}
	return nil
}

// checkMerge checks what a YAML merge key ("<<") merges into a mapping of
// type t: one mapping or a list of them.
func checkMerge(v *yaml.Node, t reflect.Type, path string) []error {
	if v.Kind == yaml.SequenceNode {
		var errs []error
		for _, c := range v.Content {
			errs = append(errs, checkNode(c, t, path)...)
		}
		return errs
	}
	return checkNode(v, t, path)
}

// fieldByKey returns the field of struct type t that YAML key decodes into.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if f.IsExported() && name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// got describes the value of n for an error message.
func got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return ", got a mapping"
	case yaml.SequenceNode:
		return ", got a list"
	}
	return fmt.Sprintf(", got %q", n.Value)
}

// nodeError places err at node n, whose key path is path.
func nodeError(n *yaml.Node, path string, err error) error {
	if path == "" {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return fmt.Errorf("line %d: %s: %w", n.Line, path, err)
}

// applyEnv applies the OPTIN_* environment overrides found by lookup.
func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	strs := []struct {
		name string
		dst  *string
	}{
		{"OPTIN_LISTEN", &c.Listen},
		{"OPTIN_BASE_URL", &c.BaseURL},
		{"OPTIN_DATA_DIR", &c.DataDir},
		{"OPTIN_STORE", &c.Store},
		{"OPTIN_POSTGRES_URL", &c.Postgres.URL},
		{"OPTIN_MAIL_TRANSPORT", &c.Mail.Transport},
		{"OPTIN_MAIL_FROM", &c.Mail.From},
		{"OPTIN_SMTP_HOST", &c.Mail.SMTP.Host},
		{"OPTIN_SMTP_USERNAME", &c.Mail.SMTP.Username},
		{"OPTIN_SMTP_PASSWORD", &c.Mail.SMTP.Password},
		{"OPTIN_SMTP_TLS", &c.Mail.SMTP.TLS},
	}
	for _, s := range strs {
		if v, ok := lookup(s.name); ok {
			*s.dst = v
		}
	}
	var errs []error
	if v, ok := lookup("OPTIN_SMTP_PORT"); ok {
		v = strings.TrimSpace(v)
		if v == "" {
			c.Mail.SMTP.Port = 0 // default by TLS mode
		} else if p, err := strconv.Atoi(v); err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("OPTIN_SMTP_PORT: must be a port number between 1 and 65535: %q", v))
		} else {
			c.Mail.SMTP.Port = p
		}
	}
	if v, ok := lookup("OPTIN_TOKEN_KEYS"); ok {
		var keys []Key
		for i, entry := range strings.Split(v, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			id, secret, ok := strings.Cut(entry, ":")
			if !ok {
				// Do not echo the entry: it may be a bare secret.
				errs = append(errs, fmt.Errorf("OPTIN_TOKEN_KEYS: entry %d: must be kid:base64secret (entries separated by commas)", i+1))
				continue
			}
			keys = append(keys, Key{ID: strings.TrimSpace(id), Secret: strings.TrimSpace(secret)})
		}
		c.Tokens.Keys = keys
	}
	return errors.Join(errs...)
}

// Validate checks c and returns every problem found, joined with
// errors.Join; each message starts with the offending key. It also fills the
// derived defaults: base_url from a loopback listen address when empty, and
// the SMTP port from the TLS mode when zero. A valid base_url is stored with
// trailing slashes removed.
func (c *Config) Validate() error {
	var errs []error

	host, port, err := net.SplitHostPort(c.Listen)
	listenOK := err == nil && port != ""
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("listen: must be host:port such as \"127.0.0.1:8080\": %w", err))
	case port == "":
		errs = append(errs, fmt.Errorf("listen: missing port: %q", c.Listen))
	}

	if c.BaseURL == "" {
		if listenOK && consent.LoopbackHost(host) {
			c.BaseURL = "http://" + c.Listen
		} else if listenOK {
			errs = append(errs, errors.New("base_url: required when listen is not a loopback address"))
		}
	} else if err := checkBaseURL(c.BaseURL); err != nil {
		errs = append(errs, err)
	} else {
		c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	}

	if strings.TrimSpace(c.DataDir) == "" {
		errs = append(errs, errors.New("data_dir: required"))
	}

	errs = append(errs, c.validateStore()...)

	for i, p := range c.TrustedProxies {
		if _, err := parseProxy(p); err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %q is not an IP address or CIDR: %w", i, p, err))
		}
	}

	errs = append(errs, c.Mail.validate()...)
	errs = append(errs, c.Tokens.validate()...)
	errs = append(errs, c.Brand.validate(c.DataDir)...)

	if c.Lifecycle.DormantAfter <= 0 {
		errs = append(errs, fmt.Errorf("lifecycle.dormant_after: must be positive: %s", c.Lifecycle.DormantAfter))
	}
	for _, k := range c.Lifecycle.CustomerActivities {
		if !slices.Contains(consent.ActivityKinds, consent.ActivityKind(k)) {
			errs = append(errs, fmt.Errorf("lifecycle.customer_activities: %q is not purchase, reservation, enquiry, login or note", k))
		}
	}
	if _, err := consent.ParseChannels(c.Preferences.Channels); err != nil {
		errs = append(errs, fmt.Errorf("preferences.channels: %w", err))
	}
	if c.ShutdownGrace <= 0 {
		errs = append(errs, fmt.Errorf("shutdown_grace: must be positive: %s", c.ShutdownGrace))
	}
	if c.Pending.Retention < 0 {
		errs = append(errs, fmt.Errorf("pending.retention: must not be negative: %s", c.Pending.Retention))
	}
	if c.Notices.Art14Within <= 0 || time.Duration(c.Notices.Art14Within) > consent.MaxNoticeWithin {
		errs = append(errs, fmt.Errorf("notices.art14_within: must be positive and at most 30d (GDPR Art. 14(3)(a): one month): %s", c.Notices.Art14Within))
	}
	if c.Retention.OptedOut < 0 {
		errs = append(errs, fmt.Errorf("retention.opted_out: must not be negative: %s", c.Retention.OptedOut))
	}
	if err := c.Limits.SignupPerIP.validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits.signup_per_ip: %w", err))
	}
	if err := c.Limits.ManagePerIP.validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits.manage_per_ip: %w", err))
	}
	if err := c.Limits.Confirmations.validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits.confirmations: %w", err))
	}
	errs = append(errs, c.Scanners.validate()...)
	return errors.Join(errs...)
}

// validateStore checks store and postgres.url. Messages never repeat the
// URL: it may hold a password.
func (c *Config) validateStore() []error {
	switch c.Store {
	case StoreBolt:
		if c.Postgres.URL != "" {
			return []error{fmt.Errorf("postgres.url: set, but store is %q: set store to %q to use it, or remove it", c.Store, StorePostgres)}
		}
		return nil
	case StorePostgres:
	default:
		return []error{fmt.Errorf("store: must be %q or %q: %q", StoreBolt, StorePostgres, c.Store)}
	}
	if strings.TrimSpace(c.Postgres.URL) == "" {
		return []error{errors.New("postgres.url: required when store is \"postgres\" (or set OPTIN_POSTGRES_URL)")}
	}
	if l := time.Duration(c.Postgres.OutboxLease); l != 0 && l < 10*time.Second {
		return []error{fmt.Errorf("postgres.outbox_lease: must be at least 10s (or unset for 5m): %s", c.Postgres.OutboxLease)}
	}
	const hint = "want a URL such as postgres://optin@db.example.com:5432/optin?sslmode=verify-full"
	u, err := url.Parse(c.Postgres.URL)
	switch {
	case err != nil:
		return []error{errors.New("postgres.url: not a valid URL; " + hint)}
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		return []error{fmt.Errorf("postgres.url: scheme must be postgres or postgresql, not %q; %s", u.Scheme, hint)}
	case u.Host == "" && u.Query().Get("host") == "":
		return []error{errors.New("postgres.url: names no host; " + hint)}
	}
	return nil
}

// urlHoldsPassword reports whether the PostgreSQL URL u holds a
// password: after the user name, or as the parameter "password", which
// pgx reads too.
func urlHoldsPassword(u *url.URL) bool {
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	_, held := redactPasswordParam(u.RawQuery)
	return held
}

// redactPasswordParam returns the query rawQuery with the value of each
// "password" parameter masked, and whether it had one. It splits the
// parameters as pgx does (on "&" only, keys unescaped), not as
// url.ParseQuery, which drops a pair holding a ";" that pgx reads.
func redactPasswordParam(rawQuery string) (string, bool) {
	if rawQuery == "" {
		return "", false
	}
	pairs := strings.Split(rawQuery, "&")
	held := false
	for i, pair := range pairs {
		k, _, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			key = k // pgx refuses such a URL; judge the key as written
		}
		if key == "password" {
			pairs[i], held = k+"=xxxxx", true
		}
	}
	return strings.Join(pairs, "&"), held
}

// PostgresURLRedacted returns postgres.url with any password masked (after
// the user name, or as the parameter "password"), for messages and logs.
func (c Config) PostgresURLRedacted() string {
	u, err := url.Parse(c.Postgres.URL)
	if err != nil {
		return "(not a valid URL)"
	}
	u.RawQuery, _ = redactPasswordParam(u.RawQuery)
	return u.Redacted()
}

// checkBaseURL reports why raw is not an acceptable base_url, or nil.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("base_url: not a valid URL: %w", err)
	}
	if u.User != nil {
		// Do not echo the URL: the user info may hold a password.
		return errors.New("base_url: must not contain user info (user@ or user:password@)")
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("base_url: must be an absolute URL such as \"https://news.example.com\": %q", raw)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return fmt.Errorf("base_url: must not contain a query: %q", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("base_url: must not contain a fragment: %q", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !consent.LoopbackHost(u.Hostname()) {
			return fmt.Errorf("base_url: must be https (http is only allowed for a loopback host): %q", raw)
		}
	default:
		return fmt.Errorf("base_url: must be https (http is only allowed for a loopback host): %q", raw)
	}
	return nil
}

// parseProxy parses a trusted_proxies entry: an IP address (as a single-host
// prefix) or a CIDR.
func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (m *Mail) validate() []error {
	var errs []error
	switch m.Transport {
	case TransportFile, TransportSMTP:
	default:
		errs = append(errs, fmt.Errorf("mail.transport: must be %q or %q: %q", TransportFile, TransportSMTP, m.Transport))
	}

	if strings.ContainsAny(m.From, "\r\n") {
		errs = append(errs, fmt.Errorf("mail.from: must not contain CR or LF: %q", m.From))
	} else if _, err := mail.ParseAddress(m.From); err != nil {
		errs = append(errs, fmt.Errorf("mail.from: must be a single address such as \"optin <optin@example.com>\": %q: %w", m.From, err))
	}

	s := &m.SMTP
	defaultPort := 0
	switch s.TLS {
	case TLSMandatory:
		defaultPort = 465
	case TLSStartTLS:
		defaultPort = 587
	case TLSNone:
		defaultPort = 25
	default:
		errs = append(errs, fmt.Errorf("mail.smtp.tls: must be %q, %q or %q: %q", TLSMandatory, TLSStartTLS, TLSNone, s.TLS))
	}
	if s.Port == 0 {
		s.Port = defaultPort
	}
	if s.Port != 0 && (s.Port < 1 || s.Port > 65535) {
		errs = append(errs, fmt.Errorf("mail.smtp.port: must be between 1 and 65535: %d", s.Port))
	}
	if m.Transport == TransportSMTP && strings.TrimSpace(s.Host) == "" {
		errs = append(errs, errors.New("mail.smtp.host: required when mail.transport is \"smtp\""))
	}
	if _, err := s.RootCAs(); err != nil {
		errs = append(errs, err)
	}
	if s.Helo != "" && !validHelo(s.Helo) {
		errs = append(errs, fmt.Errorf("mail.smtp.helo: must be a domain name such as \"mail.example.com\" or an address literal such as \"[192.0.2.1]\": %q", s.Helo))
	}
	return append(errs, m.validateFeedback()...)
}

// validateFeedback checks mail.dkim, mail.return_path_domain and
// mail.inbound.
func (m *Mail) validateFeedback() []error {
	var errs []error
	d := m.DKIM
	if d.Enabled() {
		if !validHelo(d.Domain) || strings.HasPrefix(d.Domain, "[") {
			errs = append(errs, fmt.Errorf("mail.dkim.domain: must be a domain name such as \"example.com\": %q", d.Domain))
		}
		keys := append([]DKIMKey{{Selector: d.Selector, PrivateKeyFile: d.PrivateKeyFile}}, d.MoreKeys...)
		for i, k := range keys {
			name := "mail.dkim"
			if i > 0 {
				name = fmt.Sprintf("mail.dkim.more_keys[%d]", i-1)
			}
			if !validHelo(k.Selector) || strings.HasPrefix(k.Selector, "[") {
				errs = append(errs, fmt.Errorf("%s.selector: must be a DNS label such as \"s2026\": %q", name, k.Selector))
			}
			if strings.TrimSpace(k.PrivateKeyFile) == "" {
				errs = append(errs, fmt.Errorf("%s.private_key_file: required (make one with optin dkim keygen)", name))
			}
		}
	}
	if m.ReturnPathDomain != "" && (!validHelo(m.ReturnPathDomain) || strings.HasPrefix(m.ReturnPathDomain, "[")) {
		errs = append(errs, fmt.Errorf("mail.return_path_domain: must be a domain name such as \"bounces.example.com\": %q", m.ReturnPathDomain))
	}
	if m.Inbound.Listen != "" {
		if _, _, err := net.SplitHostPort(m.Inbound.Listen); err != nil {
			errs = append(errs, fmt.Errorf("mail.inbound.listen: must be host:port such as \"0.0.0.0:25\": %q", m.Inbound.Listen))
		}
		if m.ReturnPathDomain == "" {
			errs = append(errs, errors.New("mail.inbound.listen: needs mail.return_path_domain, the domain it takes mail for"))
		}
	}
	return errs
}

// RootCAs returns the CAs the relay's certificate may be signed by: the
// system's plus those in CAFile. It returns nil (the system's alone) when
// CAFile is empty.
func (s SMTP) RootCAs() (*x509.CertPool, error) {
	if s.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("mail.smtp.ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("mail.smtp.ca_file: %q holds no PEM certificate", s.CAFile)
	}
	return pool, nil
}

// validHelo reports whether name is a domain name (letters, digits and
// hyphens in dot-separated labels) or an address literal ("[192.0.2.1]",
// "[IPv6:2001:db8::1]"), as EHLO takes them (RFC 5321 4.1.3).
func validHelo(name string) bool {
	if lit, ok := strings.CutPrefix(name, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if v6, isV6 := strings.CutPrefix(lit, "IPv6:"); isV6 {
			a, err := netip.ParseAddr(v6)
			return ok && err == nil && a.Is6()
		}
		a, err := netip.ParseAddr(lit)
		return ok && err == nil && a.Is4()
	}
	if len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func (t *Tokens) validate() []error {
	var errs []error
	if d := time.Duration(t.ConfirmTTL); d < minConfirmTTL || d > maxConfirmTTL {
		errs = append(errs, fmt.Errorf("tokens.confirm_ttl: must be between %s and %s: %s",
			Duration(minConfirmTTL), Duration(maxConfirmTTL), t.ConfirmTTL))
	}
	if time.Duration(t.UnsubscribeTTL) < minUnsubscribeTTL {
		errs = append(errs, fmt.Errorf("tokens.unsubscribe_ttl: must be at least %s (CASL requires unsubscribe links to work for 60 days): %s",
			Duration(minUnsubscribeTTL), t.UnsubscribeTTL))
	}
	seen := make(map[string]int, len(t.Keys))
	for i, k := range t.Keys {
		if !validKeyID(k.ID) {
			errs = append(errs, fmt.Errorf("tokens.keys[%d].id: must be 1 to %d characters of A-Z, a-z, 0-9, '_' or '-': %q", i, maxKeyIDLen, k.ID))
		} else if j, dup := seen[k.ID]; dup {
			errs = append(errs, fmt.Errorf("tokens.keys[%d].id: duplicate id %q (also tokens.keys[%d])", i, k.ID, j))
		} else {
			seen[k.ID] = i
		}
		if _, err := decodeKey(k.Secret); err != nil {
			errs = append(errs, fmt.Errorf("tokens.keys[%d].secret (id %q): %w", i, k.ID, err))
		}
	}
	return errs
}

// validKeyID reports whether id matches ^[A-Za-z0-9_-]{1,32}$.
func validKeyID(id string) bool {
	if len(id) < 1 || len(id) > maxKeyIDLen {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// decodeKey decodes a key secret: base64 in the standard or URL alphabet,
// padded or not, of at least 32 bytes. Errors never include the secret.
func decodeKey(secret string) ([]byte, error) {
	const hint = "generate one with: openssl rand -base64 32"
	s := strings.TrimRight(strings.TrimSpace(secret), "=")
	if s == "" {
		return nil, errors.New("required; " + hint)
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not valid base64 (standard or URL alphabet); %s: %w", hint, err)
	}
	if len(b) < minKeyBytes {
		return nil, fmt.Errorf("decodes to %d bytes but must decode to at least %d bytes; %s", len(b), minKeyBytes, hint)
	}
	return b, nil
}

// KeyBytes returns the decoded secrets of Tokens.Keys in order; the ID of
// the i-th secret is Tokens.Keys[i].ID. It returns nil when no keys are
// configured.
func (c Config) KeyBytes() ([][]byte, error) {
	if len(c.Tokens.Keys) == 0 {
		return nil, nil
	}
	out := make([][]byte, 0, len(c.Tokens.Keys))
	for i, k := range c.Tokens.Keys {
		b, err := decodeKey(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("tokens.keys[%d].secret (id %q): %w", i, k.ID, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Warnings returns the development defaults Validate accepts but a public
// service (base_url not on a loopback host) should not run with, one line
// each saying what to set: mail.from at localhost, the file transport and
// an empty postal address; and, on any base_url, a DKIM domain or return
// path domain that DMARC would not find aligned with mail.from's domain.
// optin logs them at start.
func (c Config) Warnings() []string {
	warnings := c.alignmentWarnings()
	u, err := url.Parse(c.BaseURL)
	if err != nil || consent.LoopbackHost(u.Hostname()) {
		return warnings
	}
	if a, err := mail.ParseAddress(c.Mail.From); err == nil {
		domain := strings.ToLower(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
		if consent.LoopbackHost(strings.Trim(domain, "[]")) || strings.HasSuffix(domain, ".localhost") {
			warnings = append(warnings, fmt.Sprintf("mail.from is at %s (%q): set mail.from to an address at your "+
				"own domain, or receivers will refuse or bin the mail", domain, c.Mail.From))
		}
	}
	if c.Mail.Transport == TransportFile {
		warnings = append(warnings, fmt.Sprintf("mail.transport is %q: mails are written to data_dir/mail and never "+
			"sent; set mail.transport to %q and mail.smtp.host", TransportFile, TransportSMTP))
	}
	if strings.TrimSpace(c.Mail.PostalAddress) == "" {
		warnings = append(warnings, "mail.postal_address is empty: forms and mails show no postal address and "+
			"reawaken campaigns cannot start; set mail.postal_address to your postal address")
	}
	return warnings
}

// alignmentWarnings says when mail.dkim.domain or mail.return_path_domain
// is neither mail.from's domain nor a parent of it: DMARC's relaxed
// alignment (RFC 7489 3.1) then fails for that check.
func (c Config) alignmentWarnings() []string {
	a, err := mail.ParseAddress(c.Mail.From)
	if err != nil {
		return nil
	}
	from := strings.ToLower(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
	aligned := func(d string) bool {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		return d == from || strings.HasSuffix(from, "."+d) || strings.HasSuffix(d, "."+from)
	}
	var warnings []string
	if c.Mail.DKIM.Domain != "" && !aligned(c.Mail.DKIM.Domain) {
		warnings = append(warnings, fmt.Sprintf("mail.dkim.domain %q is not aligned with mail.from's domain %q: "+
			"DMARC will not count the signature; set mail.dkim.domain to %q or a parent of it", c.Mail.DKIM.Domain, from, from))
	}
	if c.Mail.ReturnPathDomain != "" && !aligned(c.Mail.ReturnPathDomain) {
		warnings = append(warnings, fmt.Sprintf("mail.return_path_domain %q is not aligned with mail.from's domain %q: "+
			"SPF will not count for DMARC; set it to a subdomain such as \"bounces.%s\"", c.Mail.ReturnPathDomain, from, from))
	}
	return warnings
}

// DevMode reports whether base_url uses plain http, which Validate only
// allows for a loopback host.
func (c Config) DevMode() bool {
	u, err := url.Parse(c.BaseURL)
	return err == nil && u.Scheme == "http"
}

// TrustedProxyPrefixes returns TrustedProxies as prefixes; a plain IP
// address becomes a single-host prefix.
func (c Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for i, s := range c.TrustedProxies {
		p, err := parseProxy(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies[%d]: %q is not an IP address or CIDR: %w", i, s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Duration is a time.Duration written as consent.ParseSpan reads it: Go
// syntax ("72h", "90m") or whole days ("365d"). Negative values are
// rejected.
type Duration time.Duration

// ParseDuration parses s as a Duration (see consent.ParseSpan).
func ParseDuration(s string) (Duration, error) {
	d, err := consent.ParseSpan(s)
	return Duration(d), err
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New(`want a duration such as "72h" or "30d"`)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats d as consent.Span does: "365d", "72h" as "3d", "1h30m".
func (d Duration) String() string { return consent.Span(d).String() }

// Rate is "N/duration", e.g. "20/10m" or "5/1h": at most N events per
// duration. "off" disables the limit; the zero Rate is off.
type Rate struct {
	N   int
	Per time.Duration
}

// ParseRate parses "N/duration" (duration as for ParseDuration; a bare unit
// such as "5/h" means one of it) or "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return Rate{}, nil
	}
	const hint = `use N/duration such as "20/10m", or "off"`
	ns, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("invalid rate %q: %s", s, hint)
	}
	ns, per = strings.TrimSpace(ns), strings.TrimSpace(per)
	n, err := strconv.Atoi(ns)
	if err != nil || !isDigits(ns) {
		return Rate{}, fmt.Errorf("invalid rate %q: %q is not a whole number; %s", s, ns, hint)
	}
	if per != "" && (per[0] < '0' || per[0] > '9') && per[0] != '.' {
		per = "1" + per // "5/h" means 5 per hour
	}
	d, err := ParseDuration(per)
	if err != nil {
		return Rate{}, fmt.Errorf("invalid rate %q: %w", s, err)
	}
	r := Rate{N: n, Per: time.Duration(d)}
	if err := r.validate(); err != nil {
		return Rate{}, fmt.Errorf("invalid rate %q: %w", s, err)
	}
	return r, nil
}

func (r Rate) validate() error {
	if r.Off() {
		return nil
	}
	if r.N < 1 {
		return fmt.Errorf(`count must be at least 1 (use "off" to disable the limit): %q`, r.String())
	}
	if r.Per <= 0 {
		return fmt.Errorf("period must be positive: %q", r.String())
	}
	return nil
}

// Off reports whether the limit is disabled.
func (r Rate) Off() bool { return r.N == 0 && r.Per == 0 }

// String formats r as ParseRate accepts it, e.g. "20/10m" or "off".
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return strconv.Itoa(r.N) + "/" + Duration(r.Per).String()
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New(`want a rate such as "20/10m" or "off"`)
	}
	v, err := ParseRate(n.Value)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (r Rate) MarshalYAML() (any, error) { return r.String(), nil }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
