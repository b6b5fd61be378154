package record

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

var update = flag.Bool("update", false, "rewrite testdata/random.golden from the encoder as it is")

// TestRandomRecordsGolden: random records of every type the stores keep
// in the compact encoding (subscribers, requests, outbox jobs, ledger
// events and personal records) encode to the bytes in
// testdata/random.golden, written by the encoder before its per-type
// plans, with and without a table of strings and as ledger events (and,
// since schema version 7, events whose time is an offset from their
// subscriber's id's); and those bytes read back as they did then (their
// JSON). The format is a
// file format: a change to the encoder's speed must not change a byte.
// Run with -update only for a deliberate change of the format.
func TestRandomRecordsGolden(t *testing.T) {
	var got []string
	withStrings(t, func(_ *bbolt.Bucket, strs Strings) error {
		r := rand.New(rand.NewPCG(1, 2))
		types := []reflect.Type{
			reflect.TypeFor[consent.Subscriber](), reflect.TypeFor[consent.Request](), reflect.TypeFor[consent.Job](),
			reflect.TypeFor[consent.Event](), reflect.TypeFor[consent.Personal](),
		}
		for i := range 150 {
			typ := types[i%len(types)]
			p := reflect.New(typ)
			fill(r, p.Elem(), 0)
			v := p.Interface()
			type way struct {
				name string
				enc  func() ([]byte, error)
				s    Strings // to read back with
			}
			ways := []way{
				{"Marshal", func() ([]byte, error) { return Marshal(v) }, nil},
				{"MarshalValue", func() ([]byte, error) { return Marshal(p.Elem().Interface()) }, nil},
				{"MarshalWith", func() ([]byte, error) { return MarshalWith(v, strs) }, strs},
			}
			if ev, ok := v.(*consent.Event); ok {
				ways = append(ways, way{"MarshalEvent", func() ([]byte, error) { return MarshalEvent(ev, prevOf(ev, i), strs) }, strs})
			}
			for _, w := range ways {
				b, err := w.enc()
				if err != nil {
					return fmt.Errorf("%d %s %s: %w", i, typ.Name(), w.name, err)
				}
				back := reflect.New(typ).Interface()
				if err := UnmarshalWith(b, back, w.s); err != nil {
					return fmt.Errorf("%d %s %s: read back: %w", i, typ.Name(), w.name, err)
				}
				j, err := json.Marshal(back)
				if err != nil {
					return err
				}
				got = append(got, fmt.Sprintf("%d %s %s %x %s", i, typ.Name(), w.name, b, j))
			}
		}
		// Events of subscribers whose ids consent.NewID made, as nearly
		// every stored event's is, at times near and far from the id's
		// (EventAtIDMagic).
		r = rand.New(rand.NewPCG(3, 4))
		for i := range 20 {
			var ev consent.Event
			fill(r, reflect.ValueOf(&ev).Elem(), 0)
			if i%4 != 3 { // else the time fill chose, often not whole milliseconds in UTC
				ev.Time = time.UnixMilli(r.Int64N(4e12)).UTC()
			}
			id := make([]byte, idLen)
			for j := range id {
				id[j] = byte(r.Uint32())
			}
			at := ev.Time.UnixMilli() - r.Int64N(1000) + []int64{0, 1e11}[r.IntN(2)]
			for j := range 6 {
				id[j] = byte(at >> (40 - 8*j))
			}
			ev.Subscriber = idString(id)
			b, err := MarshalEvent(&ev, prevOf(&ev, i), strs)
			if err != nil {
				return fmt.Errorf("event at id %d: %w", i, err)
			}
			var back consent.Event
			if err := UnmarshalEvent(b, ev.Seq, func() (string, error) { return prevOf(&ev, i), nil }, strs, &back); err != nil {
				return fmt.Errorf("event at id %d: read back: %w", i, err)
			}
			j, err := json.Marshal(back)
			if err != nil {
				return err
			}
			got = append(got, fmt.Sprintf("at-id %d Event MarshalEvent %x %s", i, b, j))
		}
		return nil
	})
	path := filepath.Join("testdata", "random.golden")
	if *update {
		if err := os.WriteFile(path, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	n := 0
	for ; sc.Scan(); n++ {
		if n >= len(got) {
			t.Fatalf("golden has more than the %d records made", len(got))
		}
		if want := sc.Text(); got[n] != want {
			t.Errorf("record differs\ngot  %.400s\nwant %.400s", got[n], want)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(got) {
		t.Errorf("golden has %d records, made %d", n, len(got))
	}
}

// prevOf returns the hash of the event before ev: its Prev (which the
// stored event leaves out) for every other i, else another one.
func prevOf(ev *consent.Event, i int) string {
	if i%10 < 5 {
		return ev.Prev
	}
	return "b3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}

// randomStrings are the forms of strings the encoding tells apart: known
// values, ids, ids with a suffix, hex, IP addresses, shared values,
// and invalid UTF-8.
var randomStrings = []string{
	"", "confirmed", "de", "pending", "x", "import:batch-7", "form:newsletter", "https://shop.example/news",
	"Mozilla/5.0 (X11; Linux x86_64)", "Ann@Example.com", "\xff bad utf-8 \u2028", "ü", "192.0.2.1", "2001:db8::1",
	"::ffff:192.0.2.1", "010.0.0.1", "2001:DB8::1",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "abcdef0123456789abcdef0123456789",
	"06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1uz",
}

// randomString returns one of randomStrings, an id alone or with a
// suffix (a Message-ID), or a string too long to share.
func randomString(r *rand.Rand) string {
	switch r.IntN(40) {
	case 0:
		return strings.Repeat("u", maxShared+1)
	case 1, 2, 3, 4, 5, 6, 7, 8, 9:
		id := make([]byte, idLen)
		for i := range id {
			id[i] = byte(r.Uint32())
		}
		s := idString(id)
		return s + []string{"", "@localhost", "@mail.example", "x", "@"}[r.IntN(5)]
	default:
		return randomStrings[r.IntN(len(randomStrings))]
	}
}

// sinceGolden are the fields added to the record types after
// testdata/random.golden was written, which fill leaves zero: filled,
// they would draw random values and shift every record after them, and
// the golden bytes, written by the encoder of then, are what this test
// keeps reading back. A new field needs nothing of the encoder (it is
// driven by the json tags); the stores' tests write and read it.
var sinceGolden = map[reflect.Type][]string{
	reflect.TypeFor[consent.Request](): {"IP"}, // 2026-12-03, the signup's address
}

// fill sets v, and what it holds, to random values: zero often, and
// for slices and maps nil, empty or a few elements.
func fill(r *rand.Rand, v reflect.Value, depth int) {
	t := v.Type()
	if r.IntN(4) == 0 || depth > 4 {
		return // zero
	}
	if t == timeType {
		ms := time.UnixMilli(r.Int64N(4e12)).UTC()
		times := []time.Time{ms, ms.Add(time.Duration(r.IntN(1e6))), ms.In(time.FixedZone("", 3600)),
			ms.In(time.FixedZone("X", -5*3600)), time.UnixMilli(-r.Int64N(6e13)).UTC(), time.Time{}.In(time.FixedZone("", 60))}
		v.Set(reflect.ValueOf(times[r.IntN(len(times))]))
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := []int64{1, -1, r.Int64N(1000) - 500, r.Int64(), math.MinInt64, math.MaxInt64}[r.IntN(6)]
		if !v.OverflowInt(n) {
			v.SetInt(n)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n := []uint64{1, r.Uint64N(1000), r.Uint64(), math.MaxUint64}[r.IntN(4)]
		if !v.OverflowUint(n) {
			v.SetUint(n)
		}
	case reflect.Float32, reflect.Float64:
		v.SetFloat(r.NormFloat64())
	case reflect.String:
		v.SetString(randomString(r))
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && !slices.Contains(sinceGolden[t], f.Name) {
				fill(r, v.Field(i), depth+1)
			}
		}
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		fill(r, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		n := r.IntN(4)
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			fill(r, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		n := r.IntN(4)
		m := reflect.MakeMapWithSize(t, n)
		for range n {
			k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			fill(r, k, depth+1)
			fill(r, e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	}
}
