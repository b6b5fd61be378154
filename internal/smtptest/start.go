package smtptest

import "testing"

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
