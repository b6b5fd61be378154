package config

import (
	"crypto/x509"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"optin/internal/smtptest"
)

// key32 and key16 are base64 secrets of 32 and 16 bytes.
const (
	key32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef"
	key16 = "MDEyMzQ1Njc4OWFiY2RlZg=="                     // "0123456789abcdef"
)

// decodeInto strictly decodes yml into v, as Parse does.
func decodeInto(yml string, v any) error {
	dec := yaml.NewDecoder(strings.NewReader(yml))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func parseString(t *testing.T, yml string, env map[string]string) (Config, error) {
	t.Helper()
	return parse(strings.NewReader(yml), "config.yaml", envMap(env))
}

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
	if got, want := c, Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Validate changed the defaults: got %+v, want %+v", got, want)
	}
	if !c.DevMode() {
		t.Errorf("Default().DevMode() = false, want true")
	}
	keys, err := c.KeyBytes()
	if err != nil || len(keys) != 0 {
		t.Errorf("Default().KeyBytes() = %v, %v; want none, nil", keys, err)
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "---\n"} {
		got, err := parseString(t, in, nil)
		if err != nil {
			t.Fatalf("parse(%q) error: %v", in, err)
		}
		if want := Default(); !reflect.DeepEqual(got, want) {
			t.Errorf("parse(%q) = %+v, want %+v", in, got, want)
		}
	}
}

func TestLoadExample(t *testing.T) {
	got, err := load("../../config.example.yaml", noEnv)
	if err != nil {
		t.Fatalf("load example: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("example config differs from Default():\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadPublic(t *testing.T) {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OPTIN_") {
			t.Skip("OPTIN_* variables set in the environment")
		}
	}
	for _, path := range []string{"", "../../config.example.yaml"} {
		if _, err := Load(path); err != nil {
			t.Errorf("Load(%q) error: %v", path, err)
		}
	}
	if _, err := Load("does-not-exist.yaml"); err == nil {
		t.Errorf("Load(missing file) error = nil, want an error")
	}
}

// goTypes matches what yaml's own errors say about Go types.
var goTypes = regexp.MustCompile(`config\.[A-Z]|!!|cannot unmarshal|not found in type|\[\]string|\bint\b|\bbool\b|map\[`)

// TestDecodeErrors: an unknown key or a value that does not fit is
// reported with its line and key path, never with a Go type, and every
// problem of the file at once.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want []string
	}{
		{"unknown top-level key", "listen: 127.0.0.1:8080\n\ntrusted_proxys: []\n",
			[]string{"config.yaml", "line 3", "trusted_proxys"}},
		{"unknown nested key", "mail:\n  smtp:\n    hots: x\n",
			[]string{"config.yaml: line 3: mail.smtp.hots: unknown key"}},
		{"bad duration names key", "tokens:\n  confirm_ttl: x\n",
			[]string{"config.yaml", "line 2", "tokens.confirm_ttl", `"x"`}},
		{"bad rate names key", "limits:\n  signup_per_ip: 20 per minute\n",
			[]string{"config.yaml", "line 2", "limits.signup_per_ip", "20 per minute"}},
		{"bad rate in flow mapping", "limits: {signup_per_ip: off, manage_per_ip: 0/10m}\n",
			[]string{"line 1", "limits.manage_per_ip", "at least 1"}},
		{"zero rate count", "limits:\n  manage_per_ip: 0/10m\n",
			[]string{"limits.manage_per_ip", "at least 1"}},
		{"negative duration", "pending:\n  retention: -1d\n",
			[]string{"pending.retention", "negative"}},
		{"duration not scalar", "lifecycle:\n  dormant_after: [1]\n",
			[]string{"lifecycle.dormant_after"}},
		{"syntax error", "listen: [\n", []string{"config.yaml"}},
		{"number for a list", "trusted_proxies: 5\n", []string{"config.yaml: line 1: trusted_proxies: want a list"}},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
			[]string{"config.yaml", "one YAML document"}},
		{"text for a number", "mail:\n  smtp:\n    port: abc\n",
			[]string{"config.yaml: line 3: mail.smtp.port: want a whole number", `"abc"`}},
		{"list for a number", "mail:\n  smtp:\n    port: [1]\n",
			[]string{"line 3: mail.smtp.port: want a whole number"}},
		{"unknown key in a list item", "tokens:\n  keys:\n    - id: k1\n      secrett: x\n",
			[]string{"line 4: tokens.keys[0].secrett: unknown key"}},
		{"text for a mapping", "mail: smtp\n",
			[]string{"line 1: mail: want a mapping"}},
		{"mapping for text", "listen:\n  host: x\n",
			[]string{"line 2: listen: want a text value"}},
		{"list item not a mapping", "tokens:\n  keys: [k1]\n",
			[]string{"line 2: tokens.keys[0]: want a mapping"}},
		{"top level not a mapping", "just text\n",
			[]string{"line 1: want a mapping"}},
		{"bad rate", "limits:\n  signup_per_ip: 20\n",
			[]string{"line 2: limits.signup_per_ip:", `invalid rate "20"`}},
		{"two problems", "listen: [x]\nmail:\n  smtp:\n    port: 25x\n",
			[]string{"line 1: listen: want a text value", "line 4: mail.smtp.port: want a whole number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, tt.yml, nil)
			if err == nil {
				t.Fatalf("got nil error, want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if got := err.Error(); !strings.Contains(got, w) {
					t.Errorf("got error %q, want it to contain %q", got, w)
				}
			}
			if m := goTypes.FindString(err.Error()); m != "" {
				t.Errorf("got error %q, which names a Go type (%q)", err, m)
			}
		})
	}
}

// TestDecodeMergeKeys: YAML merge keys still work, and what they merge in
// is checked like the rest.
func TestDecodeMergeKeys(t *testing.T) {
	yml := "x_smtp: &smtp {host: relay.example, port: 2525}\n"
	if _, err := parseString(t, yml, nil); err == nil || !strings.Contains(err.Error(), "x_smtp: unknown key") {
		t.Errorf("got %v, want x_smtp: unknown key", err)
	}
	yml = "mail:\n  transport: smtp\n  smtp:\n    <<: {host: relay.example, port: 2525}\n    tls: none\n"
	c, err := parseString(t, yml, nil)
	if err != nil || c.Mail.SMTP.Host != "relay.example" || c.Mail.SMTP.Port != 2525 {
		t.Errorf("merge: got %+v, %v", c.Mail.SMTP, err)
	}
	yml = "mail:\n  smtp:\n    <<: {hots: relay.example}\n"
	if _, err := parseString(t, yml, nil); err == nil || !strings.Contains(err.Error(), "mail.smtp.hots: unknown key") {
		t.Errorf("bad merge: got %v, want mail.smtp.hots: unknown key", err)
	}
	var joined interface{ Unwrap() []error }
	if _, err := parseString(t, "a: 1\nb: 2\n", nil); !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("two unknown keys: got %v, want two errors", err)
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		env  map[string]string
		want []string
	}{
		{"inbound without return path", "mail: {inbound: {listen: \"127.0.0.1:2525\"}}\n", nil,
			[]string{"mail.inbound.listen: needs mail.return_path_domain"}},
		{"inbound listen not host:port", "mail: {return_path_domain: b.example.com, inbound: {listen: \"2525\"}}\n", nil,
			[]string{`mail.inbound.listen: must be host:port such as "0.0.0.0:25": "2525"`}},
		{"dkim half configured", "mail: {dkim: {domain: example.com, more_keys: [{selector: \"s 2\"}]}}\n", nil,
			[]string{`mail.dkim.selector: must be a DNS label such as "s2026": ""`,
				"mail.dkim.private_key_file: required (make one with optin dkim keygen)",
				`mail.dkim.more_keys[0].selector: must be a DNS label such as "s2026": "s 2"`,
				"mail.dkim.more_keys[0].private_key_file: required (make one with optin dkim keygen)"}},
		{"bad return path domain", "mail: {return_path_domain: \"bounces example\"}\n", nil,
			[]string{`mail.return_path_domain: must be a domain name such as "bounces.example.com": "bounces example"`}},
		{"bad soft bounces", "mail: {inbound: {soft_bounces: lots}}\n", nil, []string{"mail.inbound.soft_bounces"}},
		{"http base_url for public host", "base_url: http://example.com\n", nil,
			[]string{`base_url: must be https (http is only allowed for a loopback host): "http://example.com"`}},
		{"base_url with query", "base_url: https://example.com/?a=b\n", nil,
			[]string{"base_url", "query"}},
		{"base_url with fragment", "base_url: https://example.com/#x\n", nil,
			[]string{"base_url", "fragment"}},
		{"base_url with userinfo", "base_url: https://u:secretpw@example.com\n", nil,
			[]string{"base_url", "user info"}},
		{"relative base_url", "base_url: /news\n", nil,
			[]string{"base_url", "absolute"}},
		{"ftp base_url", "base_url: ftp://example.com\n", nil,
			[]string{"base_url", "https"}},
		{"public listen without base_url", "listen: 0.0.0.0:8080\n", nil,
			[]string{"base_url: required when listen is not a loopback address"}},
		{"listen without port", "listen: localhost\n", nil,
			[]string{"listen"}},
		{"empty data_dir", "data_dir: \"\"\n", nil,
			[]string{"data_dir"}},
		{"short key", "tokens:\n  keys:\n    - id: k1\n      secret: " + key16 + "\n", nil,
			[]string{"tokens.keys[0].secret", "must decode to at least 32 bytes; generate one with: openssl rand -base64 32"}},
		{"key not base64", "tokens:\n  keys:\n    - id: k1\n      secret: '!!!not base64!!!'\n", nil,
			[]string{"tokens.keys[0].secret", "base64"}},
		{"key without secret", "tokens:\n  keys:\n    - id: k1\n", nil,
			[]string{"tokens.keys[0].secret", "required"}},
		{"duplicate kid", "tokens:\n  keys:\n    - {id: k1, secret: " + key32 + "}\n    - {id: k1, secret: " + key32 + "}\n", nil,
			[]string{"tokens.keys[1].id", "duplicate", `"k1"`}},
		{"bad kid chars", "tokens:\n  keys:\n    - {id: 'bad kid!', secret: " + key32 + "}\n", nil,
			[]string{"tokens.keys[0].id", `"bad kid!"`}},
		{"kid too long", "tokens:\n  keys:\n    - {id: " + strings.Repeat("a", 33) + ", secret: " + key32 + "}\n", nil,
			[]string{"tokens.keys[0].id"}},
		{"bad proxy CIDR", "trusted_proxies: [10.0.0.1, 10.0.0.0/33]\n", nil,
			[]string{"trusted_proxies[1]", `"10.0.0.0/33"`}},
		{"bad proxy IP", "trusted_proxies: [proxy.local]\n", nil,
			[]string{"trusted_proxies[0]", `"proxy.local"`}},
		{"unknown transport", "mail:\n  transport: sendmail\n", nil,
			[]string{"mail.transport", `"sendmail"`}},
		{"unknown tls mode", "mail:\n  transport: smtp\n  smtp:\n    host: mx.example.com\n    tls: ssl\n", nil,
			[]string{"mail.smtp.tls", `"ssl"`}},
		{"smtp without host", "mail:\n  transport: smtp\n", nil,
			[]string{"mail.smtp.host", "required"}},
		{"smtp port out of range", "mail:\n  transport: smtp\n  smtp:\n    host: mx.example.com\n    port: 70000\n", nil,
			[]string{"mail.smtp.port", "70000"}},
		{"missing ca_file", "mail:\n  smtp:\n    ca_file: /nonexistent/ca.pem\n", nil,
			[]string{"mail.smtp.ca_file", "/nonexistent/ca.pem"}},
		{"ca_file without a certificate", "mail:\n  smtp:\n    ca_file: config_test.go\n", nil,
			[]string{"mail.smtp.ca_file", "holds no PEM certificate"}},
		{"helo with a space", "mail:\n  smtp:\n    helo: \"mail example\"\n", nil,
			[]string{"mail.smtp.helo", `"mail example"`}},
		{"helo with a bad label", "mail:\n  smtp:\n    helo: -mail.example.com\n", nil,
			[]string{"mail.smtp.helo"}},
		{"helo literal not an address", "mail:\n  smtp:\n    helo: \"[mail]\"\n", nil,
			[]string{"mail.smtp.helo"}},
		{"bad from", "mail:\n  from: not an address\n", nil,
			[]string{"mail.from", `"not an address"`}},
		{"two from addresses", "mail:\n  from: a@example.com, b@example.com\n", nil,
			[]string{"mail.from"}},
		{"from with newline", "mail:\n  from: \"a@example.com\\r\\nBcc: x@example.com\"\n", nil,
			[]string{"mail.from", "CR or LF"}},
		{"confirm_ttl too short", "tokens:\n  confirm_ttl: 30m\n", nil,
			[]string{"tokens.confirm_ttl", "between 1h and 30d"}},
		{"confirm_ttl too long", "tokens:\n  confirm_ttl: 31d\n", nil,
			[]string{"tokens.confirm_ttl", "31d"}},
		{"unsubscribe_ttl 30d", "tokens:\n  unsubscribe_ttl: 30d\n", nil,
			[]string{"tokens.unsubscribe_ttl", "at least 60d", "30d"}},
		{"dormant_after zero", "lifecycle:\n  dormant_after: 0s\n", nil,
			[]string{"lifecycle.dormant_after"}},
		{"shutdown_grace zero", "shutdown_grace: 0s\n", nil,
			[]string{"shutdown_grace: must be positive"}},
		{"bad SMTP port env", "", map[string]string{"OPTIN_SMTP_PORT": "abc"},
			[]string{"OPTIN_SMTP_PORT", `"abc"`}},
		{"bad OPTIN_TOKEN_KEYS entry", "", map[string]string{"OPTIN_TOKEN_KEYS": "k1:" + key32 + ",nocolon"},
			[]string{"OPTIN_TOKEN_KEYS", "entry 2"}},
		{"bad env base_url", "", map[string]string{"OPTIN_BASE_URL": "http://example.com"},
			[]string{"base_url", "https"}},
		{"unknown store", "store: mysql\n", nil,
			[]string{"store", `"mysql"`}},
		{"postgres without url", "store: postgres\n", nil,
			[]string{"postgres.url", "required", "OPTIN_POSTGRES_URL"}},
		{"postgres url with a password in the file", "store: postgres\npostgres:\n  url: postgres://optin:secretpw@db.example.com/optin\n", nil,
			[]string{"postgres.url", "must not hold the password", "OPTIN_POSTGRES_URL"}},
		{"postgres url with a password parameter holding a semicolon in the file", "store: postgres\npostgres:\n  url: postgres://optin@db.example.com/optin?sslmode=disable&password=se;cretpw\n", nil,
			[]string{"postgres.url", "must not hold the password"}},
		{"postgres url with a password parameter in the file", "store: postgres\npostgres:\n  url: postgres://optin@db.example.com/optin?sslmode=disable&password=secretpw\n", nil,
			[]string{"postgres.url", "must not hold the password", "OPTIN_POSTGRES_URL"}},
		{"postgres url of another scheme", "store: postgres\n", map[string]string{"OPTIN_POSTGRES_URL": "mysql://optin:secretpw@db.example.com/optin"},
			[]string{"postgres.url", "scheme", `"mysql"`}},
		{"postgres url without host", "store: postgres\n", map[string]string{"OPTIN_POSTGRES_URL": "postgres:///optin"},
			[]string{"postgres.url", "no host"}},
		{"postgres url not a URL", "store: postgres\n", map[string]string{"OPTIN_POSTGRES_URL": "postgres://optin:secretpw@db.example.com:port/optin"},
			[]string{"postgres.url", "not a valid URL"}},
		{"outbox lease too short", "store: postgres\npostgres:\n  outbox_lease: 2s\n", map[string]string{"OPTIN_POSTGRES_URL": "postgres://optin@db.example.com/optin"},
			[]string{"postgres.outbox_lease", "at least 10s"}},
		{"postgres url with store bolt", "", map[string]string{"OPTIN_POSTGRES_URL": "postgres://optin:secretpw@db.example.com/optin"},
			[]string{"postgres.url", `store is "bolt"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, tt.yml, tt.env)
			if err == nil {
				t.Fatalf("got nil error, want one mentioning %q", tt.want)
			}
			got := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("got error %q, want it to contain %q", got, w)
				}
			}
			if strings.Contains(got, "secretpw") || strings.Contains(got, key16) || strings.Contains(got, key32) {
				t.Errorf("got error %q, want no secrets in it", got)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	yml := "base_url: http://example.com\ntrusted_proxies: [10.0.0.0/33]\nlimits:\n  signup_per_ip: off\n"
	_, err := parseString(t, yml, map[string]string{"OPTIN_SMTP_TLS": "ssl", "OPTIN_SMTP_PORT": "abc"})
	if err == nil {
		t.Fatal("got nil error, want several problems")
	}
	for _, w := range []string{"base_url", "trusted_proxies[0]", "mail.smtp.tls", "OPTIN_SMTP_PORT"} {
		if got := err.Error(); !strings.Contains(got, w) {
			t.Errorf("got error %q, want it to contain %q", got, w)
		}
	}
}

func TestValidateRates(t *testing.T) {
	tests := []struct {
		name string
		rate Rate
		ok   bool
	}{
		{"off", Rate{}, true},
		{"valid", Rate{N: 1, Per: time.Second}, true},
		{"zero count", Rate{N: 0, Per: 10 * time.Minute}, false},
		{"negative count", Rate{N: -1, Per: time.Minute}, false},
		{"zero period", Rate{N: 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Limits.ManagePerIP = tt.rate
			err := c.Validate()
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("Validate() = %v, want ok=%v", err, want)
			}
			if err != nil && !strings.Contains(err.Error(), "limits.manage_per_ip") {
				t.Errorf("got error %q, want it to name limits.manage_per_ip", err)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"365d", 365 * 24 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"0d", 0, false},
		{"72h", 72 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"0", 0, false},
		{"-1d", 0, true},
		{"-1h", 0, true},
		{"x", 0, true},
		{"1.5d", 0, true},
		{"d", 0, true},
		{"", 0, true},
		{"72", 0, true},
		{"999999999999d", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ParseDuration(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && time.Duration(got) != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, time.Duration(got), tt.want)
			}
		})
	}
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		yml     string
		want    time.Duration
		wantErr bool
	}{
		{"confirm_ttl: 365d", 365 * 24 * time.Hour, false},
		{"confirm_ttl: 72h", 72 * time.Hour, false},
		{"confirm_ttl: \"90m\"", 90 * time.Minute, false},
		{"confirm_ttl: -1d", 0, true},
		{"confirm_ttl: x", 0, true},
		{"confirm_ttl: {a: b}", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.yml, func(t *testing.T) {
			var got Tokens
			err := decodeInto(tt.yml, &got)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("decode %q error = %v, want error %v", tt.yml, err, tt.wantErr)
			}
			if !tt.wantErr && time.Duration(got.ConfirmTTL) != tt.want {
				t.Errorf("decode %q = %v, want %v", tt.yml, time.Duration(got.ConfirmTTL), tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{365 * 24 * time.Hour, "365d"},
		{72 * time.Hour, "3d"},
		{25 * time.Hour, "25h"},
		{time.Hour, "1h"},
		{10 * time.Minute, "10m"},
		{90 * time.Minute, "1h30m"},
		{90 * time.Second, "1m30s"},
		{0, "0s"},
	}
	for _, tt := range tests {
		if got := Duration(tt.in).String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		back, err := ParseDuration(Duration(tt.in).String())
		if err != nil || time.Duration(back) != tt.in {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", Duration(tt.in).String(), time.Duration(back), err, tt.in)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantOff bool
		wantErr bool
	}{
		{"20/10m", Rate{N: 20, Per: 10 * time.Minute}, false, false},
		{"5/1h", Rate{N: 5, Per: time.Hour}, false, false},
		{"5/h", Rate{N: 5, Per: time.Hour}, false, false},
		{"100/1d", Rate{N: 100, Per: 24 * time.Hour}, false, false},
		{" 3 / 30s ", Rate{N: 3, Per: 30 * time.Second}, false, false},
		{"off", Rate{}, true, false},
		{"OFF", Rate{}, true, false},
		{"20", Rate{}, false, true},
		{"a/1m", Rate{}, false, true},
		{"0/10m", Rate{}, false, true},
		{"-1/10m", Rate{}, false, true},
		{"20/0s", Rate{}, false, true},
		{"20/x", Rate{}, false, true},
		{"20 per minute", Rate{}, false, true},
		{"", Rate{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ParseRate(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got != tt.want {
				t.Errorf("ParseRate(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.Off() != tt.wantOff {
				t.Errorf("ParseRate(%q).Off() = %v, want %v", tt.in, got.Off(), tt.wantOff)
			}
			back, err := ParseRate(got.String())
			if err != nil || back != got {
				t.Errorf("ParseRate(%q) = %+v, %v; want %+v", got.String(), back, err, got)
			}
		})
	}
}

func TestRateString(t *testing.T) {
	tests := []struct {
		in   Rate
		want string
	}{
		{Rate{N: 20, Per: 10 * time.Minute}, "20/10m"},
		{Rate{N: 5, Per: time.Hour}, "5/1h"},
		{Rate{}, "off"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRateYAML(t *testing.T) {
	tests := []struct {
		yml     string
		want    Rate
		wantErr bool
	}{
		{"signup_per_ip: 20/10m", Rate{N: 20, Per: 10 * time.Minute}, false},
		{"signup_per_ip: off", Rate{}, false},
		{"signup_per_ip: \"off\"", Rate{}, false},
		{"signup_per_ip: 20", Rate{}, true},
		{"signup_per_ip: a/1m", Rate{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.yml, func(t *testing.T) {
			got := Limits{SignupPerIP: Rate{N: 1, Per: time.Second}}
			err := decodeInto(tt.yml, &got)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("decode %q error = %v, want error %v", tt.yml, err, tt.wantErr)
			}
			if !tt.wantErr && got.SignupPerIP != tt.want {
				t.Errorf("decode %q = %+v, want %+v", tt.yml, got.SignupPerIP, tt.want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	yml := `
mail:
  transport: smtp
  smtp:
    host: file.example.com
    password: from-file
tokens:
  keys:
    - {id: filekey, secret: ` + key32 + `}
`
	urlKey := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY" // key32 without padding
	env := map[string]string{
		"OPTIN_LISTEN":         "0.0.0.0:9000",
		"OPTIN_BASE_URL":       "https://news.example.com/",
		"OPTIN_DATA_DIR":       "/var/lib/optin",
		"OPTIN_MAIL_FROM":      "News <news@example.com>",
		"OPTIN_SMTP_HOST":      "smtp.example.com",
		"OPTIN_SMTP_PORT":      "2525",
		"OPTIN_SMTP_USERNAME":  "user",
		"OPTIN_SMTP_PASSWORD":  "from-env",
		"OPTIN_SMTP_TLS":       "mandatory",
		"OPTIN_TOKEN_KEYS":     "k2:" + key32 + ", k1:" + urlKey,
		"OPTIN_MAIL_TRANSPORT": "smtp",
		"OPTIN_STORE":          "postgres",
		"OPTIN_POSTGRES_URL":   "postgres://optin@db.example.com/optin",
	}
	got, err := parseString(t, yml, env)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Listen", got.Listen, "0.0.0.0:9000"},
		{"BaseURL", got.BaseURL, "https://news.example.com"},
		{"DataDir", got.DataDir, "/var/lib/optin"},
		{"Mail.Transport", got.Mail.Transport, "smtp"},
		{"Mail.From", got.Mail.From, "News <news@example.com>"},
		{"SMTP.Host", got.Mail.SMTP.Host, "smtp.example.com"},
		{"SMTP.Port", got.Mail.SMTP.Port, 2525},
		{"SMTP.Username", got.Mail.SMTP.Username, "user"},
		{"SMTP.Password", got.Mail.SMTP.Password, "from-env"},
		{"SMTP.TLS", got.Mail.SMTP.TLS, "mandatory"},
		{"Tokens.Keys", got.Tokens.Keys, []Key{{ID: "k2", Secret: key32}, {ID: "k1", Secret: urlKey}}},
		{"DevMode", got.DevMode(), false},
		{"Store", got.Store, "postgres"},
		{"Postgres.URL", got.Postgres.URL, "postgres://optin@db.example.com/optin"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
	keys, err := got.KeyBytes()
	if err != nil {
		t.Fatalf("KeyBytes: %v", err)
	}
	want := []byte("0123456789abcdef0123456789abcdef")
	if len(keys) != 2 || string(keys[0]) != string(want) || string(keys[1]) != string(want) {
		t.Errorf("KeyBytes() = %q, want two copies of %q", keys, want)
	}
}

func TestEnvOnlyPassword(t *testing.T) {
	got, err := parseString(t, "mail:\n  smtp:\n    password: from-file\n", map[string]string{"OPTIN_SMTP_PASSWORD": "s3cret"})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got, want := got.Mail.SMTP.Password, "s3cret"; got != want {
		t.Errorf("password: got %q, want %q", got, want)
	}
}

// TestPostgresFromEnv: the URL with its password comes from the
// environment, over the file's URL without one; the redacted form hides
// the password.
func TestPostgresFromEnv(t *testing.T) {
	yml := "store: postgres\npostgres:\n  url: postgres://optin@db.example.com/optin\n"
	env := map[string]string{"OPTIN_POSTGRES_URL": "postgres://optin:secretpw@db.example.com/optin?sslmode=verify-full"}
	got, err := parseString(t, yml, env)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got.Store != StorePostgres || got.Postgres.URL != env["OPTIN_POSTGRES_URL"] {
		t.Errorf("got store %q, url %q, want postgres and the URL from OPTIN_POSTGRES_URL", got.Store, got.Postgres.URL)
	}
	if r := got.PostgresURLRedacted(); strings.Contains(r, "secretpw") || !strings.Contains(r, "db.example.com") {
		t.Errorf("PostgresURLRedacted: got %q, want the URL without its password", r)
	}
	// A password may also be a parameter of the URL (pgx reads it).
	env["OPTIN_POSTGRES_URL"] = "postgres://optin@db.example.com/optin?sslmode=verify-full&password=secretpw"
	if got, err := parseString(t, yml, env); err != nil {
		t.Errorf("parse with the password as a parameter in the environment: %v", err)
	} else if r := got.PostgresURLRedacted(); strings.Contains(r, "secretpw") || !strings.Contains(r, "sslmode=verify-full") {
		t.Errorf("PostgresURLRedacted: got %q, want the URL without its password parameter", r)
	}
	// pgx splits the parameters on "&" only: a ";" stays in the value.
	env["OPTIN_POSTGRES_URL"] = "postgres://optin@db.example.com/optin?sslmode=verify-full&password=se;cretpw"
	if got, err := parseString(t, yml, env); err != nil {
		t.Errorf("parse with a password parameter holding a semicolon: %v", err)
	} else if r := got.PostgresURLRedacted(); strings.Contains(r, "cretpw") || !strings.Contains(r, "sslmode=verify-full") {
		t.Errorf("PostgresURLRedacted: got %q, want the URL without its password parameter", r)
	}
	if got, err := parseString(t, yml, nil); err != nil || got.Postgres.URL != "postgres://optin@db.example.com/optin" {
		t.Errorf("parse without env: got %q, %v, want the file's URL", got.Postgres.URL, err)
	}
}

func TestEnvEmptyTokenKeysClears(t *testing.T) {
	yml := "tokens:\n  keys:\n    - {id: k1, secret: " + key32 + "}\n"
	got, err := parseString(t, yml, map[string]string{"OPTIN_TOKEN_KEYS": ""})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if n := len(got.Tokens.Keys); n != 0 {
		t.Errorf("got %d keys, want 0", n)
	}
}

func TestBaseURLDefaults(t *testing.T) {
	tests := []struct {
		name    string
		yml     string
		want    string
		wantDev bool
	}{
		{"default", "", "http://127.0.0.1:8080", true},
		{"from loopback listen", "listen: 127.0.0.1:9000\n", "http://127.0.0.1:9000", true},
		{"from 127/8 listen", "listen: 127.1.2.3:9000\n", "http://127.1.2.3:9000", true},
		{"from localhost listen", "listen: localhost:3000\n", "http://localhost:3000", true},
		{"from ipv6 loopback listen", "listen: \"[::1]:8080\"\n", "http://[::1]:8080", true},
		{"explicit https, trailing slash", "listen: 0.0.0.0:8080\nbase_url: https://example.com/news/\n", "https://example.com/news", false},
		{"http localhost allowed", "base_url: http://localhost:8080/\n", "http://localhost:8080", true},
		{"http ipv6 loopback allowed", "base_url: http://[::1]:8080\n", "http://[::1]:8080", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseString(t, tt.yml, nil)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got, want := c.BaseURL, tt.want; got != want {
				t.Errorf("BaseURL: got %q, want %q", got, want)
			}
			if got, want := c.DevMode(), tt.wantDev; got != want {
				t.Errorf("DevMode: got %v, want %v", got, want)
			}
		})
	}
}

func TestListenPublicRequiresBaseURL(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:8080", ":8080", "192.0.2.1:8080", "example.com:80"} {
		_, err := parseString(t, "listen: \""+listen+"\"\n", nil)
		if err == nil || !strings.Contains(err.Error(), "base_url: required when listen is not a loopback address") {
			t.Errorf("listen %q: got error %v, want base_url required", listen, err)
		}
	}
}

// TestRelaySettings: the EHLO name and the CA file are taken as given.
func TestRelaySettings(t *testing.T) {
	srv, _, err := smtptest.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	path := smtptest.CAFile(t, srv)
	for _, helo := range []string{"mail.example.com", "localhost", "[192.0.2.1]", "[IPv6:2001:db8::1]"} {
		c, err := parseString(t, "mail:\n  smtp:\n    ca_file: "+path+"\n    helo: \""+helo+"\"\n", nil)
		if err != nil {
			t.Fatalf("helo %q: %v", helo, err)
		}
		if c.Mail.SMTP.Helo != helo || c.Mail.SMTP.CAFile != path {
			t.Errorf("helo, ca_file: got %q, %q, want %q, %q", c.Mail.SMTP.Helo, c.Mail.SMTP.CAFile, helo, path)
		}
	}
	c, err := parseString(t, "mail:\n  smtp:\n    ca_file: "+path+"\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := c.Mail.SMTP.RootCAs()
	if err != nil || pool == nil {
		t.Fatalf("RootCAs: got %v, %v, want a pool", pool, err)
	}
	leaf := srv.Certificates[0].Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("the CA file's certificate does not verify with RootCAs: %v", err)
	}
	if pool, err := Default().Mail.SMTP.RootCAs(); pool != nil || err != nil {
		t.Errorf("RootCAs without ca_file: got %v, %v, want nil, nil (the system's)", pool, err)
	}
}

func TestSMTPPortDefaults(t *testing.T) {
	tests := []struct {
		yml  string
		env  map[string]string
		want int
	}{
		{"", nil, 587},
		{"mail:\n  smtp:\n    tls: mandatory\n", nil, 465},
		{"mail:\n  smtp:\n    tls: none\n", nil, 25},
		{"mail:\n  smtp:\n    tls: none\n    port: 2525\n", nil, 2525},
		{"", map[string]string{"OPTIN_SMTP_TLS": "mandatory"}, 465},
		{"mail:\n  smtp:\n    port: 2525\n", map[string]string{"OPTIN_SMTP_PORT": ""}, 587},
	}
	for _, tt := range tests {
		c, err := parseString(t, tt.yml, tt.env)
		if err != nil {
			t.Fatalf("parse %q: %v", tt.yml, err)
		}
		if got, want := c.Mail.SMTP.Port, tt.want; got != want {
			t.Errorf("parse %q env %v: port got %d, want %d", tt.yml, tt.env, got, want)
		}
	}
}

func TestKeyEncodings(t *testing.T) {
	raw := "\xfb\xff" + strings.Repeat("\xfe", 30) // encodes with + / or - _
	tests := []struct {
		name, secret string
	}{
		{"std padded", "+//+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4="},
		{"std raw", "+//+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4"},
		{"url padded", "-__-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v4="},
		{"url raw", "-__-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v4"},
		{"surrounding spaces", "  +//+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4=  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Tokens.Keys = []Key{{ID: "k", Secret: tt.secret}}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			keys, err := c.KeyBytes()
			if err != nil {
				t.Fatalf("KeyBytes: %v", err)
			}
			if got, want := string(keys[0]), raw; got != want {
				t.Errorf("KeyBytes()[0] = %x, want %x", got, want)
			}
		})
	}
}

func TestKeyBytesError(t *testing.T) {
	c := Default()
	c.Tokens.Keys = []Key{{ID: "k1", Secret: key32}, {ID: "k2", Secret: key16}}
	_, err := c.KeyBytes()
	if err == nil || !strings.Contains(err.Error(), "tokens.keys[1]") {
		t.Errorf("KeyBytes() error = %v, want one naming tokens.keys[1]", err)
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	c := Default()
	c.TrustedProxies = []string{"10.0.0.1", "192.168.1.7/24", "::1"}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	ps, err := c.TrustedProxyPrefixes()
	if err != nil {
		t.Fatalf("TrustedProxyPrefixes: %v", err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if want := []string{"10.0.0.1/32", "192.168.1.0/24", "::1/128"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestErrorsAreJoined(t *testing.T) {
	c := Default()
	c.Listen = "nope"
	c.DataDir = ""
	err := c.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("Validate() = %v, want a joined error", err)
	}
	if got, want := len(joined.Unwrap()), 2; got != want {
		t.Errorf("got %d problems (%v), want %d", got, err, want)
	}
}

// TestConfirmationsBrake: the global brake has a default, can be set and
// can be switched off.
func TestConfirmationsBrake(t *testing.T) {
	tests := []struct {
		yaml string
		want Rate
		off  bool
	}{
		{"", Rate{N: 100, Per: 2 * time.Second}, false},
		{"limits:\n  confirmations: \"600/1m\"\n", Rate{N: 600, Per: time.Minute}, false},
		{"limits:\n  confirmations: \"off\"\n", Rate{}, true},
	}
	for _, tt := range tests {
		c, err := Parse(strings.NewReader(tt.yaml), "t.yaml")
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		if got := c.Limits.Confirmations; got.Off() != tt.off || (!tt.off && got != tt.want) {
			t.Errorf("%q: got %+v (off %v), want %+v (off %v)", tt.yaml, got, got.Off(), tt.want, tt.off)
		}
	}
	if _, err := Parse(strings.NewReader("limits:\n  confirmations: \"0/1s\"\n"), "t.yaml"); err == nil ||
		!strings.Contains(err.Error(), "limits.confirmations") {
		t.Errorf("0/1s: got %v, want an error naming limits.confirmations", err)
	}
}

// TestWarnings: a public base_url with development defaults left in place
// gets one warning per default, naming the key to set; a loopback
// base_url gets none.
func TestWarnings(t *testing.T) {
	const public = "base_url: https://news.example.com\n"
	tests := []struct {
		name string
		yml  string
		want []string // one prefix per warning, in order
	}{
		{"loopback", "", nil},
		{"https loopback", "base_url: https://localhost:8443\n", nil},
		{"public with defaults", public, []string{`mail.from is at localhost ("optin <optin@localhost>")`,
			`mail.transport is "file"`, "mail.postal_address is empty"}},
		{"public, from at a .localhost name", public + "mail: {from: news@shop.localhost, transport: smtp, " +
			"postal_address: \"1 Main St\", smtp: {host: mx.example.com}}\n", []string{"mail.from is at shop.localhost"}},
		{"public, configured", public + "mail: {from: news@example.com, transport: smtp, " +
			"postal_address: \"1 Main St\", smtp: {host: mx.example.com}}\n", nil},
		{"dkim and return path not aligned", "mail: {from: news@shop.example.com, return_path_domain: bounces.other.example, " +
			"dkim: {domain: other.example, selector: s1, private_key_file: k.pem}}\n",
			[]string{`mail.dkim.domain "other.example" is not aligned`, `mail.return_path_domain "bounces.other.example" is not aligned`}},
		{"dkim and return path aligned", "mail: {from: news@shop.example.com, return_path_domain: bounces.shop.example.com, " +
			"dkim: {domain: example.com, selector: s1, private_key_file: k.pem}}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseString(t, tt.yml, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings: got %q, want %d starting %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) || !strings.Contains(got[i], "set ") {
					t.Errorf("warning %d: got %q, want it to start %q and say what to set", i, got[i], w)
				}
			}
		})
	}
}

// TestScanners: the scanners section parses, with its defaults when
// absent, and every bad value is named.
func TestScanners(t *testing.T) {
	c, err := parseString(t, "scanners:\n  window: 90s\n  networks: [198.51.100.0/24, 203.0.113.9]\n  suspected: accept\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Scanners.Window) != 90*time.Second || c.Scanners.Suspected != SuspectedAccept {
		t.Errorf("scanners: got %+v, want window 90s, suspected accept", c.Scanners)
	}
	if got := c.Scanners.ScannerNetworks(); len(got) != 2 || got[0].String() != "198.51.100.0/24" || got[1].String() != "203.0.113.9/32" {
		t.Errorf("ScannerNetworks: got %s", got)
	}
	_, err = parseString(t, "scanners:\n  window: 0s\n  networks: [10.0.0.0/33]\n  suspected: drop\n", nil)
	for _, w := range []string{"scanners.window", "scanners.networks[0]", "scanners.suspected"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("got error %v, want it to name %s", err, w)
		}
	}
}

// TestExampleNamesEveryKey: config.example.yaml, which the README points
// to for every key it does not list, names each key of Config (set or in
// a comment). It failed for postgres.outbox_lease.
func TestExampleNamesEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !regexp.MustCompile(`(?m)^[#\s]*` + regexp.QuoteMeta(name) + `:`).MatchString(text) {
				t.Errorf("config.example.yaml does not name %s%s", prefix, name)
			}
			if ft := f.Type; ft.Kind() == reflect.Struct && ft.NumField() > 0 && ft.Field(0).Tag.Get("yaml") != "" {
				walk(prefix+name+".", ft)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}
