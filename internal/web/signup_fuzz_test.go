package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
	"optin/internal/web"
	"optin/templates"
)

// fuzzContentTypes are the request content types FuzzSignupBinding picks
// from: the two the forms use and every other body gin can bind.
var fuzzContentTypes = []string{
	"application/json",
	"application/x-www-form-urlencoded",
	"application/json; charset=utf-8",
	"multipart/form-data; boundary=XYZ",
	"application/x-www-form-urlencoded; charset=utf-8",
	"", // none
	"text/plain",
	"application/xml",
	"application/x-yaml",
	"application/toml",
	"application/x-protobuf",
	"application/x-msgpack",
}

// fuzzBaseURL is the server's own origin; fuzzAllowedOrigin the one other
// origin the form accepts.
const (
	fuzzBaseURL       = "https://optin.example"
	fuzzAllowedOrigin = "https://shop.example"
)

// newFuzzServer builds a web.Server on a real bbolt database bootstrapped
// the way internal/app does (topic news, form newsletter), with the signup
// rate limits and the confirmation brake off so that every answer depends
// on the request alone. It also returns the catalog's locales.
func newFuzzServer(f *testing.F) (http.Handler, []string) {
	f.Helper()
	db, err := bolt.Open(filepath.Join(f.TempDir(), "optin.db"), bolt.Options{HMACKey: bytes.Repeat([]byte{'h'}, 32)})
	if err != nil {
		f.Fatalf("bolt.Open: got err %v, want nil", err)
	}
	f.Cleanup(func() { db.Close() })
	topic := consent.Topic{ID: "news", Name: "Product news", Description: "News about our products"}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Wording: map[string]string{}, WordingVersion: 1,
		AllowedOrigins: []string{fuzzAllowedOrigin}}
	if _, err := db.Bootstrap(context.Background(), topic, form, consent.HashAPIKey(strings.Repeat("k", 32))); err != nil {
		f.Fatalf("Bootstrap: got err %v, want nil", err)
	}
	tokens, err := token.NewIssuer(fuzzBaseURL, []token.Key{{ID: "k1", Secret: bytes.Repeat([]byte{'t'}, 32)}},
		func() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) })
	if err != nil {
		f.Fatalf("NewIssuer: got err %v, want nil", err)
	}
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		f.Fatalf("i18n.Load: got err %v, want nil", err)
	}
	srv, err := web.New(web.Config{Store: db, Tokens: tokens, Catalog: cat, Templates: templates.FS,
		BaseURL: fuzzBaseURL, Sender: "Example Ltd", PostalAddress: "1 Main St", ConfirmBrake: web.Brake{Off: true}})
	if err != nil {
		f.Fatalf("web.New: got err %v, want nil", err)
	}
	return srv.Handler(), cat.Locales()
}

// fuzzResponse is what FuzzSignupBinding compares between responses.
type fuzzResponse struct {
	status   int
	body     string
	location string
}

// FuzzSignupBinding posts a fuzzed body (JSON, urlencoded, multipart or
// any other content type gin binds) with fuzzed Origin, Accept and
// Accept-Language headers to the real signup handler on a real database.
//
// Properties: the status is one of 202, 303, 400, 403, 404, 413, 429,
// never 500; accepted signups answer 202 {"status":"pending"} to JSON
// clients and 303 to the thanks page in a supported locale with an empty
// body otherwise, the same body bytes for every accepted input, and the
// same answer again when the request is repeated (no enumeration of known
// addresses); a client that wants
// JSON gets every error as {"error":{"code","message"}} with non-empty
// fields and the code of the status; no response header contains CR or
// LF; only the server's own and the form's allowed origins are reflected
// in Access-Control-Allow-Origin.
//
// Seeds: testdata/fuzz/FuzzSignupBinding.
func FuzzSignupBinding(f *testing.F) {
	h, locales := newFuzzServer(f)
	// Over the 64 KiB body limit: 413.
	f.Add(uint8(1), "email="+strings.Repeat("a", 70<<10)+"@example.com&topics=news", "", "", "", false)
	f.Add(uint8(0), `{"email":"`+strings.Repeat("a", 70<<10)+`@example.com","topics":["news"]}`, "", "application/json", "", false)

	f.Fuzz(func(t *testing.T, ctype uint8, body, origin, accept, acceptLanguage string, unknownForm bool) {
		ct := fuzzContentTypes[int(ctype)%len(fuzzContentTypes)]
		path := "/f/newsletter"
		if unknownForm {
			path = "/f/nosuchform"
		}
		post := func() (*httptest.ResponseRecorder, fuzzResponse) {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			for k, v := range map[string]string{"Content-Type": ct, "Origin": origin, "Accept": accept, "Accept-Language": acceptLanguage} {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec, fuzzResponse{status: rec.Code, body: rec.Body.String(), location: rec.Header().Get("Location")}
		}
		rec, res := post()
		wantsJSON := strings.Contains(accept, "application/json") || strings.HasPrefix(ct, "application/json")

		for k, vs := range rec.Header() {
			for _, v := range vs {
				if strings.ContainsAny(k+v, "\r\n") {
					t.Fatalf("status %d: header %q: %q contains CR or LF", res.status, k, v)
				}
			}
		}
		if acao := rec.Header().Get("Access-Control-Allow-Origin"); acao != "" && acao != fuzzBaseURL && acao != fuzzAllowedOrigin {
			t.Fatalf("status %d: Access-Control-Allow-Origin %q, want only %q or %q", res.status, acao, fuzzBaseURL, fuzzAllowedOrigin)
		}

		switch res.status {
		case http.StatusAccepted, http.StatusSeeOther:
			want := fuzzResponse{status: http.StatusAccepted, body: `{"status":"pending"}`}
			if res.status == http.StatusSeeOther {
				// The thanks page is in the language picked from the
				// body's locale, the form's and Accept-Language.
				want = fuzzResponse{status: http.StatusSeeOther, location: res.location}
				locale, ok := strings.CutPrefix(res.location, "/f/newsletter/thanks?locale=")
				if res.location == "/f/newsletter/thanks" {
					locale, ok = locales[0], true // the thanks page picks the language itself
				}
				if !ok || !slices.Contains(locales, locale) {
					t.Fatalf("accepted signup: got Location %q, want /f/newsletter/thanks[?locale=<one of %q>]", res.location, locales)
				}
			}
			if got := res.status == http.StatusAccepted; got != wantsJSON {
				t.Fatalf("accepted signup: got status %d, but client wants JSON = %v", res.status, wantsJSON)
			}
			if res != want {
				t.Fatalf("accepted signup: got %+v, want %+v", res, want)
			}
			if _, again := post(); again != res {
				t.Fatalf("same signup again: got %+v, first time %+v; want identical answers", again, res)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
			isJSON := strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json")
			if wantsJSON && !isJSON {
				t.Fatalf("status %d for a JSON client: got Content-Type %q, want application/json", res.status, rec.Header().Get("Content-Type"))
			}
			if isJSON {
				checkFuzzJSONError(t, res)
			}
		default:
			t.Fatalf("got status %d (body %.200q), want one of 202, 303, 400, 403, 404, 413, 429", res.status, res.body)
		}
	})
}

// fuzzErrorCodes maps each error status to the code its JSON body carries.
var fuzzErrorCodes = map[int]string{
	http.StatusBadRequest:            consent.EInvalid,
	http.StatusForbidden:             consent.EForbidden,
	http.StatusNotFound:              consent.ENotFound,
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusTooManyRequests:       consent.ERateLimited,
}

// checkFuzzJSONError checks that res is exactly {"error":{"code","message"}}
// with non-empty fields and the code of its status.
func checkFuzzJSONError(t *testing.T, res fuzzResponse) {
	t.Helper()
	var v struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(res.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || dec.More() {
		t.Fatalf("status %d: body %q is not {\"error\":{\"code\",\"message\"}}: %v", res.status, res.body, err)
	}
	if v.Error == nil || v.Error.Code == "" || v.Error.Message == "" {
		t.Fatalf("status %d: body %q: want non-empty error code and message", res.status, res.body)
	}
	if got, want := v.Error.Code, fuzzErrorCodes[res.status]; got != want {
		t.Fatalf("status %d: got error code %q, want %q", res.status, got, want)
	}
	if v.Error.Message == "internal error" {
		t.Fatalf("status %d: body %q shows an internal error", res.status, res.body)
	}
}
