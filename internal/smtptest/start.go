package smtptest

import (
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// Start starts a server on 127.0.0.1:0 with opts, registers Close with
// tb.Cleanup and fails the test immediately if the server cannot start.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := New("127.0.0.1:0", opts)
	if err != nil {
		tb.Fatalf("smtptest: start server: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("smtptest: close server: %v", err)
		}
	})
	return s
}

// CAFile writes the certificate of a config from SelfSignedTLS as a PEM
// file in a temporary directory, as an operator's CA file holds it, and
// returns its path.
func CAFile(tb testing.TB, cfg *tls.Config) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "relay-ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Certificate[0]})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("smtptest: writing the CA file: %v", err)
	}
	return path
}
