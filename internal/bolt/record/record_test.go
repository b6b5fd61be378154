package record

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// codecRecords are records of every hot type with most fields set, in the
// forms a store writes them (ids, hashes, Message-IDs, UTC milliseconds)
// and in the forms it does not (other zones, nanoseconds, odd strings).
func codecRecords() []any {
	ms := time.Date(2026, 12, 2, 22, 0, 0, 123e6, time.UTC)
	nanos := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	id := "06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1u4"
	return []any{
		&consent.Subscriber{ID: id, Email: "Ann@Example.com", Name: "Ann <b>", Locale: "de", Created: ms, LastPurchase: nanos,
			Subscriptions: map[string]*consent.Subscription{
				"news":   {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: ms},
				"offers": {Topic: "offers", Status: consent.StatusPending, Since: ms, Assessment: "lia-1"},
			},
			PendingRequest: id, ConfirmMails: []time.Time{ms, nanos, {}}, BlockedUntil: ms.Add(time.Nanosecond),
			Reawakened: map[string]time.Time{"news": ms, "x": {}}, SoftBounces: []time.Time{},
			Notice: &consent.Notice{Source: "import:abc", Basis: consent.BasisSoftOptIn, Topics: []string{}, Queued: ms, MessageID: id + "@mail.example"}},
		&consent.Subscriber{ID: "not-an-id", Email: "b@example.com", Subscriptions: map[string]*consent.Subscription{}},
		&consent.Subscriber{ID: "06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1uz", Email: "\xff bad utf-8 \u2028"},
		&consent.Request{ID: id, Subscriber: id, Form: "newsletter", Source: "form:newsletter", Topics: []string{"news", ""},
			Locale: "en", Created: ms, Expires: ms.Add(72 * time.Hour), MessageID: id + "@localhost", Sent: ms, NewEmail: "c@example.com"},
		&consent.Job{ID: 1 << 40, Kind: consent.JobReawaken, To: "a@example.com", Name: "Ann", Locale: "fr", Subscriber: id, Topics: []string{"news"},
			MessageID: id + "@localhost", Created: ms, Attempts: -3, NextAt: ms, LastError: "451 try later", Reminder: true, Body: "Hello\n{{name}}"},
		&consent.Event{Seq: 7, Time: ms, Type: consent.EventConfirmed, Subscriber: id, Topics: []string{"news"}, Basis: consent.BasisConsent,
			Source: "form:newsletter", Page: "https://shop.example/", Wording: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			Check: &consent.Check{Class: "person", Reasons: []string{"slow"}, AfterMail: -5, Interaction: true}, OccurredAt: nanos,
			PersonalDigest: "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", Prev: "", Hash: "abc"},
		&consent.Personal{Salt: id, Email: "a@example.com", IP: "2001:db8::1", UserAgent: "Mozilla/5.0", Note: "ü"},
	}
}

// TestCodecReadsBackWhatJSONWould: a record written in the compact
// encoding reads back exactly as the same record written as JSON, the
// encoding it replaces, reads back.
func TestCodecReadsBackWhatJSONWould(t *testing.T) {
	for _, v := range codecRecords() {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := Unmarshal(j, fromJSON); err != nil {
			t.Fatal(err)
		}
		c, err := Marshal(v)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if c[0] != Magic {
			t.Fatalf("%T: starts with %x", v, c[0])
		}
		fromCompact := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := Unmarshal(c, fromCompact); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !reflect.DeepEqual(fromJSON, fromCompact) {
			t.Errorf("%T: compact reads back\n%+v\nJSON reads back\n%+v", v, fromCompact, fromJSON)
		}
		jc, _ := json.Marshal(fromCompact)
		jj, _ := json.Marshal(fromJSON)
		if string(jc) != string(jj) {
			t.Errorf("%T: JSON after the compact round trip\n%s\nafter a JSON one\n%s", v, jc, jj)
		}
		if len(c) >= len(j) {
			t.Errorf("%T: compact %d bytes, JSON %d", v, len(c), len(j))
		}
		for n := range len(c) - 1 { // a cut record is an error, never a panic
			_ = Unmarshal(c[:n+1], reflect.New(reflect.TypeOf(v).Elem()).Interface())
		}
	}
}

// TestCodecFieldsComeAndGo: a reader skips the fields it does not know
// (a field a later version removed) and leaves the ones it has but the
// record lacks (a field added since) zero, as with JSON.
func TestCodecFieldsComeAndGo(t *testing.T) {
	type later struct {
		ID       string              `json:"id"`
		Phone    string              `json:"phone,omitempty"`
		Channels map[string]bool     `json:"channels"`
		Postal   *struct{ A, B int } `json:"postal"`
		Freq     time.Duration       `json:"frequency"`
		Since    time.Time           `json:"since"`
	}
	type earlier struct {
		ID    string    `json:"id"`
		Since time.Time `json:"since"`
		Gone  string    `json:"-"`
	}
	ms := time.UnixMilli(1_800_000_000_000).UTC()
	c, err := Marshal(&later{ID: "x", Phone: "+44 20", Channels: map[string]bool{"sms": true, "mail": false},
		Postal: &struct{ A, B int }{1, 2}, Freq: time.Hour, Since: ms})
	if err != nil {
		t.Fatal(err)
	}
	var e earlier
	if err := Unmarshal(c, &e); err != nil {
		t.Fatal(err)
	}
	if e != (earlier{ID: "x", Since: ms}) {
		t.Errorf("read %+v", e)
	}
	c, err = Marshal(&earlier{ID: "y", Since: ms})
	if err != nil {
		t.Fatal(err)
	}
	var l later
	if err := Unmarshal(c, &l); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l, later{ID: "y", Since: ms}) {
		t.Errorf("read %+v", l)
	}
}

// TestCodecZonedTimes: a time at another offset than UTC keeps its
// instant and its offset, as in JSON.
func TestCodecZonedTimes(t *testing.T) {
	type rec struct {
		T  time.Time            `json:"t"`
		TS []time.Time          `json:"ts"`
		TM map[string]time.Time `json:"tm"`
	}
	zoned := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("", 2*3600))
	c, err := Marshal(&rec{T: zoned, TS: []time.Time{zoned}, TM: map[string]time.Time{"a": zoned}})
	if err != nil {
		t.Fatal(err)
	}
	var r rec
	if err := Unmarshal(c, &r); err != nil {
		t.Fatal(err)
	}
	for _, got := range []time.Time{r.T, r.TS[0], r.TM["a"]} {
		if _, off := got.Zone(); !got.Equal(zoned) || off != 2*3600 {
			t.Errorf("read %v, want %v", got, zoned)
		}
	}
}

// TestIDs: the ids consent.NewID makes take their 22 bytes and read back;
// a string that only looks like one is written out.
func TestIDs(t *testing.T) {
	r := rand.NewChaCha8([32]byte{1})
	for i := range 1000 {
		id := consent.NewID(time.UnixMilli(int64(i)<<36), r)
		b, ok := idBytes(id)
		if !ok || len(b) != idLen || idString(b) != id {
			t.Fatalf("%s: %x, %v, back %s", id, b, ok, idString(b))
		}
	}
	for _, s := range []string{"06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1uz", "06H5L2P3S0F8A7TBB1Q9IHVD0MFHQ7K2C1U0", "06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1w0", "06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1u"} {
		if b, ok := idBytes(s); ok {
			t.Errorf("%s taken as an id: %x", s, b)
		}
	}
}

// BenchmarkMarshal compares the compact encoding of each hot record with
// its JSON, both ways.
func BenchmarkMarshal(b *testing.B) {
	for _, v := range codecRecords() {
		name := reflect.TypeOf(v).Elem().Name()
		c, _ := Marshal(v)
		j, _ := json.Marshal(v)
		b.Run(name+"/compact", func(b *testing.B) {
			for range b.N {
				if _, err := Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/json", func(b *testing.B) {
			for range b.N {
				if _, err := json.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/compact-read", func(b *testing.B) {
			for range b.N {
				if err := Unmarshal(c, reflect.New(reflect.TypeOf(v).Elem()).Interface()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/json-read", func(b *testing.B) {
			for range b.N {
				if err := Unmarshal(j, reflect.New(reflect.TypeOf(v).Elem()).Interface()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSharedMessageIDDomain: with a table of strings, a Message-ID takes
// its id's bytes and the number of its domain, stored once for every
// record; the records read back as from JSON, and not without the table.
func TestSharedMessageIDDomain(t *testing.T) {
	withStrings(t, func(b *bbolt.Bucket, strs Strings) error {
		id := consent.NewID(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), rand.NewChaCha8([32]byte{2}))
		ms := time.Date(2026, 12, 2, 22, 0, 0, 123e6, time.UTC)
		records := append(codecRecords(),
			&consent.Request{ID: id, Subscriber: id, Form: "newsletter", Source: "form:newsletter", Topics: []string{"news"},
				Created: ms, MessageID: id + "@mail.shop.example", Page: "https://shop.example/"},
			&consent.Job{ID: 9, Kind: consent.JobConfirm, To: "a@example.com", Subscriber: id, Request: id,
				MessageID: id + "@mail.shop.example", Created: ms},
			&consent.Event{Time: ms, Type: consent.EventRequested, Subscriber: id, Request: id, MessageID: id + "@localhost"})
		for i, v := range records {
			plain, err := Marshal(v)
			if err != nil {
				return err
			}
			shared, err := MarshalWith(v, strs)
			if err != nil {
				return err
			}
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := UnmarshalWith(shared, back, strs); err != nil {
				return err
			}
			want := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			j, _ := json.Marshal(v)
			if err := json.Unmarshal(j, want); err != nil {
				return err
			}
			if !reflect.DeepEqual(back, want) {
				t.Errorf("%T read back as %+v, want %+v", v, back, want)
			}
			if i < len(records)-3 { // ids that are not consent.NewID's stay written out
				continue
			}
			if saved := len(plain) - len(shared); saved < len("@localhost")-2 {
				t.Errorf("%T: %d bytes with the table, %d without", v, len(shared), len(plain))
			}
			if err := Unmarshal(shared, reflect.New(reflect.TypeOf(v).Elem()).Interface()); err == nil {
				t.Errorf("%T with a shared domain read without the table", v)
			}
		}
		var keys []string
		_ = b.ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
		// "@mail.shop.example", "@localhost", and the values of
		// internFields ("form:newsletter", the form "newsletter", the
		// page, "import:abc", a wording's hash, a user agent), each both
		// ways.
		if len(keys) != 16 {
			t.Errorf("table of strings: %q, want 16 keys", keys)
		}
		return nil
	})
}

// TestIPAddresses: a string that is an IP address as netip writes it
// takes its 4 or 16 bytes, when fewer than its characters, and reads
// back the same; one netip would write otherwise stays written out.
func TestIPAddresses(t *testing.T) {
	for _, tc := range []struct {
		ip    string
		bytes int // of the value with its header
	}{
		{"198.51.100.7", 1 + 4}, {"2001:db8:85a3:8d3:1319:8a2e:370:7348", 1 + 16}, {"2001:db8::1", 1 + 11},
		{"::ffff:192.0.2.1", 1 + 16},
		{"192.0.2.01", 1 + 10}, {"2001:DB8::1", 1 + 11}, {"fe80::1%eth0", 1 + 12}, {"1.2.3", 1 + 5},
	} {
		b, err := Marshal(&consent.Personal{IP: tc.ip})
		if err != nil {
			t.Fatal(err)
		}
		var p consent.Personal
		if err := Unmarshal(b, &p); err != nil || p.IP != tc.ip {
			t.Errorf("%q read back as %q, %v", tc.ip, p.IP, err)
		}
		if n := len(b) - 2; n != tc.bytes { // the magic byte and the field's key
			t.Errorf("%q takes %d bytes, want %d", tc.ip, n, tc.bytes)
		}
	}
}

// TestLongSharedStringWrittenOut: a value of a shared field longer than
// maxShared (a forged user agent of a megabyte) is written out, not put in
// the table, whose keys it would not fit.
func TestLongSharedStringWrittenOut(t *testing.T) {
	withStrings(t, func(b *bbolt.Bucket, strs Strings) error {
		p := &consent.Personal{Salt: "s", UserAgent: strings.Repeat("x", 1<<20)}
		v, err := MarshalWith(p, strs)
		if err != nil {
			return err
		}
		var back consent.Personal
		if err := UnmarshalWith(v, &back, strs); err != nil || back != *p {
			return fmt.Errorf("read back %d bytes of user agent, %v", len(back.UserAgent), err)
		}
		if n := b.Stats().KeyN; n != 0 {
			return fmt.Errorf("%d strings in the table", n)
		}
		return nil
	})
}

// withStrings runs fn in a read-write transaction of a new database with
// an empty table of strings.
func withStrings(t *testing.T, fn func(b *bbolt.Bucket, strs Strings) error) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("strings"))
		if err != nil {
			return err
		}
		return fn(b, BucketStrings{B: b})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEventTimeFromSubscriberID: a ledger event of a subscriber whose id
// consent.NewID made keeps its time as milliseconds from the time the id
// starts with (a byte or two for an event of a new subscriber instead
// of eight), and reads back whole, alone or partly; an event whose time
// is not whole milliseconds in UTC, whose subscriber's id is another's,
// or whose Prev is stored keeps its time.
func TestEventTimeFromSubscriberID(t *testing.T) {
	created := time.Date(2026, 3, 4, 5, 6, 7, 891e6, time.UTC)
	id := consent.NewID(created, strings.NewReader(strings.Repeat("r", 16)))
	prev := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name  string
		ev    consent.Event
		prev  string
		short bool
	}{
		{"just after", consent.Event{Seq: 7, Time: created.Add(3 * time.Millisecond), Type: consent.EventImported, Subscriber: id, Prev: prev}, prev, true},
		{"just before", consent.Event{Seq: 7, Time: created.Add(-2 * time.Millisecond), Type: consent.EventImported, Subscriber: id, Prev: prev}, prev, true},
		{"years after", consent.Event{Seq: 7, Time: created.Add(3 * 365 * 24 * time.Hour), Type: consent.EventConfirmed, Subscriber: id, Prev: prev}, prev, true},
		{"another id", consent.Event{Seq: 7, Time: created, Type: consent.EventImported, Subscriber: "sub-1", Prev: prev}, prev, false},
		{"a fraction", consent.Event{Seq: 7, Time: created.Add(5), Type: consent.EventImported, Subscriber: id, Prev: prev}, prev, false},
		{"prev stored", consent.Event{Seq: 7, Time: created, Type: consent.EventImported, Subscriber: id, Prev: prev}, "other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withStrings(t, func(_ *bbolt.Bucket, strs Strings) error {
				b, err := MarshalEvent(&tc.ev, tc.prev, strs)
				if err != nil {
					t.Fatal(err)
				}
				if short := b[0] == EventAtIDMagic; short != tc.short {
					t.Fatalf("stored as %x, time from the id %v, want %v", b, short, tc.short)
				}
				var got consent.Event
				if err := UnmarshalEvent(b, 7, func() (string, error) { return prev, nil }, strs, &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.ev) {
					t.Fatalf("read back as %+v, want %+v", got, tc.ev)
				}
				var part struct {
					Subscriber string `json:"subscriber"`
				}
				if err := Unmarshal(b, &part); err != nil || part.Subscriber != tc.ev.Subscriber {
					t.Fatalf("subscriber alone: %q, %v", part.Subscriber, err)
				}
				return nil
			})
		})
	}
}

// TestWithoutString: a field holding the value written out is cut out of
// the record, which reads back without it and with every other field;
// another value, or a record without the field, is left as it is.
func TestWithoutString(t *testing.T) {
	p := consent.Personal{Salt: "s", Email: "ann@example.com", IP: "192.0.2.1", Note: "n"}
	b, err := Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := WithoutString(b, "email", "bob@example.com"); ok {
		t.Fatal("cut out another address")
	}
	short, ok := WithoutString(b, "email", p.Email)
	if !ok {
		t.Fatal("did not cut out the address")
	}
	var got consent.Personal
	if err := Unmarshal(short, &got); err != nil {
		t.Fatal(err)
	}
	want := p
	want.Email = ""
	if got != want {
		t.Fatalf("read back as %+v, want %+v", got, want)
	}
	if _, ok := WithoutString(short, "email", p.Email); ok {
		t.Fatal("cut out an address from a record without one")
	}
}

// TestPersonalTextNotShared: the table of strings, which nothing
// deletes, takes no part of what a person wrote or is: an address, a
// note or a postal address shaped as a Message-ID (an id, '@' and the
// rest) or as an import's evidence text stays whole in its record (the
// personal record, which erasure deletes); only a Message-ID's domain and
// the values of internFields are shared.
func TestPersonalTextNotShared(t *testing.T) {
	id := consent.NewID(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), rand.NewChaCha8([32]byte{3}))
	withStrings(t, func(b *bbolt.Bucket, strs Strings) error {
		records := []any{
			&consent.Personal{Salt: "s", Email: id + "@jane-doe.example", Note: "source=Jane Doe phoned from +44 20 7946 0000",
				PostalAddress: "source=12 Main St, Springfield", Phone: id + "@+44 20 7946 0000"},
			&consent.Request{ID: id, Subscriber: id, NewEmail: id + "@jane-doe.example",
				PostalAddress: "source=12 Main St", MessageID: id + "@mail.shop.example"},
		}
		for _, v := range records {
			if _, err := MarshalWith(v, strs); err != nil {
				return err
			}
		}
		var shared []string
		err := b.ForEach(func(k, v []byte) error {
			if k[0] == 0 {
				shared = append(shared, string(v))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if want := []string{"@mail.shop.example"}; !slices.Equal(shared, want) {
			t.Errorf("table of strings: got %q, want %q", shared, want)
		}
		return nil
	})
}

// TestPersonalOldSharedFormsRead: records written before only a
// Message-ID field shared its domain and only the shared fields packed
// evidence texts (an address's domain numbered in the table, a note
// packed as evidence) read back as written: the decoder goes by each
// string's kind, whatever its field.
func TestPersonalOldSharedFormsRead(t *testing.T) {
	id := consent.NewID(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), rand.NewChaCha8([32]byte{4}))
	want := consent.Personal{Salt: "s", Email: id + "@jane-doe.example", Note: "source=shop; consented_at=2026-12-01T10:00:00Z"}
	withStrings(t, func(_ *bbolt.Bucket, strs Strings) error {
		// Encode as before: the address's field as a Message-ID's, the
		// note's as a shared field's.
		p := planOf(reflect.TypeFor[consent.Personal]())
		for i := range p.fields {
			f := &p.fields[i]
			switch f.name {
			case "email":
				defer func(was bool) { f.messageID = was }(f.messageID)
				f.messageID = true
			case "note":
				defer func(was bool) { f.intern = was }(f.intern)
				f.intern = true
			}
		}
		b, err := MarshalWith(&want, strs)
		if err != nil {
			return err
		}
		if plain, _ := Marshal(&want); len(b) >= len(plain) {
			t.Fatalf("old forms not written: %d bytes, %d plain", len(b), len(plain))
		}
		var got consent.Personal
		if err := UnmarshalWith(b, &got, strs); err != nil {
			return err
		}
		if got != want {
			t.Errorf("read back %+v, want %+v", got, want)
		}
		return nil
	})
}
