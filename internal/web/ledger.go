package web

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
	"optin/internal/ledger"
)

// The ledger's public face: its signed head, its keys and consistency
// proofs between two of its sizes, so anyone holding an old head can
// check that today's ledger extends it (RFC 6962 section 2.1.2).

// ledgerReady answers 404 and reports false when this server signs no
// heads (a read-only CLI over a database whose key it lacks).
func (s *Server) ledgerReady(c *gin.Context) bool {
	if s.cfg.Ledger == nil {
		s.fail(c, consent.Errorf(consent.ENotFound, "this server signs no ledger heads"))
		return false
	}
	return true
}

// handleLedgerHead serves a signed head covering every event committed
// before the request, as a signed note.
func (s *Server) handleLedgerHead(c *gin.Context) {
	if !s.ledgerReady(c) {
		return
	}
	h, err := s.cfg.Ledger.Head(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", h.Note)
}

// handleLedgerKey serves the verifier keys of the ledger, one a line, the
// signing one first and retired ones after it.
func (s *Server) handleLedgerKey(c *gin.Context) {
	if !s.ledgerReady(c) {
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(strings.Join(s.cfg.Ledger.VerifierKeys(), "\n")+"\n"))
}

// handleLedgerConsistency proves that the ledger's first to events
// extend its first from events: tlog.CheckTree with the proof and the two
// heads' root hashes succeeds.
func (s *Server) handleLedgerConsistency(c *gin.Context) {
	from, errFrom := strconv.ParseInt(c.Query("from"), 10, 64)
	to, errTo := strconv.ParseInt(c.Query("to"), 10, 64)
	if errFrom != nil || errTo != nil || from < 1 || from > to {
		s.fail(c, consent.Errorf(consent.EInvalid, "from and to must be sizes with 1 <= from <= to"))
		return
	}
	ctx := c.Request.Context()
	tree, err := s.store.LedgerTree(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	if to > tree.N {
		s.fail(c, consent.Errorf(consent.EInvalid, "to is larger than the ledger, which holds %d events", tree.N))
		return
	}
	proof, err := tlog.ProveTree(to, from, s.hashReader(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=86400") // a proof between two sizes never changes
	c.JSON(http.StatusOK, ledger.Consistency{From: from, To: to, Proof: proof})
}

// hashReader reads the store's tree hashes under the request's context.
func (s *Server) hashReader(c *gin.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.store.LedgerHashes(c.Request.Context(), idx) })
}

// handleLedgerVerify walks the ledger; each head=SIZE:ROOT parameter (ROOT
// in base64, as in a signed head) is a saved head the ledger must extend.
func (s *Server) handleLedgerVerify(c *gin.Context) {
	var heads []tlog.Tree
	for _, v := range c.QueryArray("head") {
		n, root, ok := strings.Cut(v, ":")
		size, err := strconv.ParseInt(n, 10, 64)
		h, herr := base64.StdEncoding.DecodeString(root)
		if !ok || err != nil || size < 0 || herr != nil || len(h) != len(tlog.Hash{}) {
			s.fail(c, consent.Errorf(consent.EInvalid, "head must be SIZE:ROOT with ROOT 32 bytes of base64"))
			return
		}
		heads = append(heads, tlog.Tree{N: size, Hash: tlog.Hash(h)})
	}
	rep, err := s.store.VerifyLedger(c.Request.Context(), heads...)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}
