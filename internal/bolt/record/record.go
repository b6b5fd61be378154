// Package record is the compact encoding of optin's stored records in
// bbolt: a file format, kept apart from the store so that tests reaching
// into a database file read and write it too.
package record

import (
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// The compact record encoding. The hot records (subscribers, requests,
// outbox jobs, ledger events and their personal records) are stored in
// it instead of JSON; Unmarshal reads both, so a record not yet
// rewritten still reads. It is driven by the json tags of the Go types,
// so a field added later needs nothing here (adding its name to
// fieldNames saves the bytes of writing it out):
//
//	record  = Magic struct
//	struct  = { key value }                 (to the end of its bytes)
//	key     = uvarint((name+1)<<2 | wire)   name: index in fieldNames,
//	                                        -1 (0) when the name follows
//	                                        inline as uvarint length + bytes
//	wire 0  = uvarint                       ints (zigzag), uints, bools,
//	                                        UTC times in milliseconds
//	wire 1  = uvarint length + bytes        structs, slices, maps, pointers,
//	                                        other times, JSON of the rest
//	wire 2  = string                        uvarint(n<<3 | kind), then per
//	                                        kind: n bytes written out, known
//	                                        string n, n bytes of hex, n bytes
//	                                        of an id, an id and n bytes, shared
//	                                        string n, an id and shared
//	                                        string n, or a packed form: an IP
//	                                        address's bytes, an import row's
//	                                        evidence in its parts (see
//	                                        encoder.string)
//
// A field whose value is zero (reflect.Value.IsZero) is left out, and an
// empty slice or map of an omitempty field, so that a record reads back
// as it would from JSON: an empty slice or map stays distinct from a nil
// one where JSON keeps it. A reader skips a field it does not know
// by its wire type, as JSON ignores an unknown key.

// Magic starts every compact record; a JSON record starts with '{'.
// EventMagic starts a ledger event whose Prev is left out (see
// MarshalEvent), and EventAtIDMagic one whose Time is left out too: a
// zigzag uvarint of milliseconds from the time its subscriber's id
// starts with follows the magic byte. RefMagic starts a record that
// leaves fields to another record it names, which its store fills them
// back from (a queued confirmation mail's, from its request).
const (
	Magic          = 0xC1
	EventMagic     = 0xC2
	RefMagic       = 0xC3
	EventAtIDMagic = 0xC4
)

// IsCompact reports whether b is a record in the compact encoding.
func IsCompact(b []byte) bool {
	return len(b) > 0 && (b[0] == Magic || b[0] == EventMagic || b[0] == RefMagic || b[0] == EventAtIDMagic)
}

// fields returns the fields of compact record b: what follows its magic
// byte and, for EventAtIDMagic, the time's offset.
func fields(b []byte) ([]byte, error) {
	if b[0] != EventAtIDMagic {
		return b[1:], nil
	}
	_, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return nil, errTruncated
	}
	return b[1+n:], nil
}

// Unmarshal decodes a stored record, compact or JSON, into v.
func Unmarshal(b []byte, v any) error {
	if IsCompact(b) {
		f, err := fields(b)
		if err != nil {
			return err
		}
		return unmarshalCompact(f, v)
	}
	return json.Unmarshal(b, v)
}

// fieldNames numbers the json names of stored fields: a name listed here
// takes one or two bytes, another one is written out. Append only: the
// position is the stored number. The first 31 take one byte.
var fieldNames = []string{
	"id", "email", "locale", "created", "subscriptions", "topic", "status", "basis", "since",
	"subscriber", "form", "source", "topics", "expires", "message_id", "pending_request", "confirm_mails",
	"time", "type", "page", "wording", "request", "personal_digest", "hash", "salt", "ip", "user_agent",
	"kind", "to", "next_at", "token_expires",
	"name", "last_purchase", "blocked_until", "last_manage_mail", "reawakened", "soft_bounces", "art14_notice",
	"assessment", "sent", "confirmed", "canceled", "new_email", "attempts", "last_error", "campaign", "subject",
	"body", "reminder", "field", "activity", "occurred_at", "check", "prev", "seq", "email_hash", "note",
	"origin", "queued", "due", "class", "reasons", "after_mail_s", "scanner_network", "interaction",
}

// knownStrings are values stored as their number (kind stringKnown).
// Append only, like fieldNames.
var knownStrings = []string{
	"pending", "confirmed", "unsubscribed", "lapsed", "consent", "soft_opt_in", "legitimate_interest",
	"requested", "reconfirmed", "imported", "preferences_updated", "erased", "activity", "rectified", "informed",
	"confirm", "preferences", "reawaken", "address_change", "address_changed", "incident_notice", "art14_notice",
	"one_click", "person", "scanner", "en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "fi", "nb",
	"name", "email", "purchase", "reservation", "enquiry", "login", "note",
}

var (
	fieldNumbers = indexOf(fieldNames)
	knownNumbers = indexOf(knownStrings)
)

func indexOf(s []string) map[string]uint64 {
	m := make(map[string]uint64, len(s))
	for i, v := range s {
		m[v] = uint64(i)
	}
	return m
}

// Wire types.
const (
	wireVarint = 0
	wireBytes  = 1
	wireString = 2
)

// String kinds, the low three bits of a string's header.
const (
	stringInline   = 0 // header>>3 bytes follow
	stringKnown    = 1 // knownStrings[header>>3]
	stringHex      = 2 // header>>3 bytes follow, written as lower-case hex
	stringID       = 3 // header>>3 bytes follow, written as an id (consent.NewID's base32)
	stringIDSuffix = 4 // an id's idLen bytes, then header>>3 bytes written out
	stringInterned = 5 // number header>>3 in the database's Strings
	// An id's idLen bytes, then number header>>3 in the database's
	// Strings: a Message-ID, whose domain is the same in most of them.
	stringIDInterned = 6
	// A value in a form of its own, header>>3 naming which (packed*).
	// The last kind three bits name.
	stringPacked = 7
)

// Packed forms, header>>3 of a string of kind stringPacked.
const (
	packedIPv4 = 0 // an IP address as netip writes it: its 4 bytes
	packedIPv6 = 1 // or its 16 bytes
	// An import row's evidence text (consent.ImportRow.Evidence): a byte
	// of the parts present (bit i: evidenceKeys[i]), then each: its
	// source as a string (shared), its times as zigzag varints of seconds
	// since 1970, its method as uvarint(i+1) for evidenceMethods[i] or 0
	// and a string. Only with a table of strings, which a store has only
	// from the version on that refuses an older optin (bbolt's schema
	// version 6, PostgreSQL's migration 19), as an older reader would
	// not know the form.
	packedEvidence = 2
)

// internFields are the fields of a ledger event, its personal record or
// a request whose values many of them share (the import batch or form,
// the form's id, the page, the hash of the wording agreed to, a
// browser's user agent),
// stored once in the database's Strings (see MarshalEvent and
// MarshalWith); an imported event's page, its row's evidence, is packed
// instead (encoder.shared). A user agent in the table outlives the personal records
// that cite it, which erasure deletes: alone it names no one. No other
// value of a personal record is shared (see messageIDField).
var internFields = map[string]bool{"source": true, "form": true, "page": true, "wording": true, "user_agent": true}

// messageIDField is the field of a Message-ID (an id, '@' and optin's
// domain), whose domain the table of strings keeps once
// (stringIDInterned). Only that field's: an address or a note of the
// same shape is a person's, in a personal record that erasure deletes,
// and must not leave a part of it in the table, which nothing deletes.
// For the same reason only the values of internFields are packed as
// evidence texts (encoder.shared), whose source goes to the table.
const messageIDField = "message_id"

// maxShared is the longest string the table of strings takes: one
// longer (a forged user agent) is written out in its record, as no other
// record shares it, and a bbolt key holds at most 32,768 bytes.
const maxShared = 1024

// idLen is the bytes of a consent.NewID id.
const idLen = 22

// IDLen is the length of what ID returns for a consent.NewID id, and
// the length IDString reads as one.
const IDLen = idLen

// Marshal returns the compact encoding of v, a struct or a pointer to
// one.
func Marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("record: compact encoding of %s", rv.Type())
	}
	return marshal(addressable(rv), nil)
}

// MarshalWith is Marshal storing shared strings in strings: the values of
// internFields (but evidence texts, see encoder.shared) and the domain
// of a Message-ID (an id, '@' and the rest).
func MarshalWith(v any, strings Strings) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("record: compact encoding of %s", rv.Type())
	}
	return marshal(addressable(rv), strings)
}

// addressable returns v, copied to the heap when it is not addressable
// (a struct passed by value): the encoder reads the time.Time fields of
// an addressable struct through their address, which a copy of each
// into an interface would cost an allocation apiece.
func addressable(v reflect.Value) reflect.Value {
	if v.CanAddr() {
		return v
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	return p.Elem()
}

// UnmarshalWith is Unmarshal reading shared strings from strings.
func UnmarshalWith(b []byte, v any, strings Strings) error { return unmarshalWith(b, v, strings) }

func marshal(rv reflect.Value, strings Strings) ([]byte, error) {
	e := encoder{buf: make([]byte, 1, 256), strings: strings}
	e.buf[0] = Magic
	if err := e.structFields(rv); err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.buf, nil
}

// unmarshalCompact decodes a compact record (after its magic byte) into
// the struct v points to.
func unmarshalCompact(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("compact decoding into %T", v)
	}
	d := decoder{b: b}
	return d.structFields(rv.Elem())
}

// unmarshalWith is Unmarshal reading interned strings from strings.
func unmarshalWith(b []byte, v any, strings Strings) error {
	if !IsCompact(b) {
		return json.Unmarshal(b, v)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("compact decoding into %T", v)
	}
	f, err := fields(b)
	if err != nil {
		return err
	}
	d := decoder{b: f, strings: strings}
	return d.structFields(rv.Elem())
}

// field is one stored field of a struct type, with every decision that
// depends only on its type and tag made once (see planOf).
type field struct {
	index []int // as reflect.Value.FieldByIndex takes it
	name  string
	key   uint64 // (number+1)<<2, without the wire type; 0 for an inline name
	typ   reflect.Type
	codec *codec // how values of typ are written
	// omitEmpty leaves an empty slice or map out, as omitempty does.
	omitEmpty bool
	// intern stores the value in the table of strings, when there is one
	// (internFields).
	intern bool
	// messageID stores the domain of the value in the table of strings,
	// when there is one (messageIDField).
	messageID bool
}

// plan is how a struct type is stored.
type plan struct {
	fields []field
	// byNumber maps key>>2 (a name's number+1) to a fields index, -1 for
	// a name the type has not; a slice, as the numbers are few and dense.
	byNumber []int
	byName   map[string]int // for inline names
}

// fieldOf returns the index in p.fields of the field of key>>2 n, or of
// the inline name when n is 0.
func (p *plan) fieldOf(n uint64, name []byte) (int, bool) {
	if n == 0 {
		i, ok := p.byName[string(name)]
		return i, ok
	}
	if n >= uint64(len(p.byNumber)) || p.byNumber[n] < 0 {
		return 0, false
	}
	return p.byNumber[n], true
}

var plans sync.Map // reflect.Type -> *plan; a cache, as encoding/json keeps

func planOf(t reflect.Type) *plan {
	if p, ok := plans.Load(t); ok {
		return p.(*plan)
	}
	p := &plan{byNumber: make([]int, len(fieldNames)+1), byName: map[string]int{}}
	for i := range p.byNumber {
		p.byNumber[i] = -1
	}
	addFields(p, t, nil)
	actual, _ := plans.LoadOrStore(t, p)
	return actual.(*plan)
}

// addFields adds t's exported fields as encoding/json sees them:
// embedded structs without a tag contribute their fields.
func addFields(p *plan, t reflect.Type, index []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(slices.Clone(index), i)
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(p, ft, idx)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := field{index: idx, name: name, typ: sf.Type, codec: codecOf(sf.Type),
			omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty"), intern: internFields[name],
			messageID: name == messageIDField}
		if n, ok := fieldNumbers[name]; ok {
			f.key = (n + 1) << 2
			p.byNumber[n+1] = len(p.fields)
		}
		p.byName[name] = len(p.fields)
		p.fields = append(p.fields, f)
	}
}

// usesJSON reports whether values of t are stored as their JSON: types
// with their own JSON or text form (but time.Time), interfaces and kinds
// the encoding has no form for.
func usesJSON(t reflect.Type) bool {
	if v, ok := jsonTypes.Load(t); ok {
		return v.(bool)
	}
	j := findUsesJSON(t)
	jsonTypes.Store(t, j)
	return j
}

var jsonTypes sync.Map // reflect.Type -> usesJSON; a cache

func findUsesJSON(t reflect.Type) bool {
	if t == timeType {
		return false
	}
	for _, it := range []reflect.Type{jsonMarshaler, textMarshaler} {
		if t.Implements(it) || reflect.PointerTo(t).Implements(it) {
			return true
		}
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Complex64, reflect.Complex128, reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Array:
		return true
	}
	return false
}

// A kind is the form of a type's values, decided once per type (see
// codec) so that the encoder and decoder switch on it rather than ask
// reflect and the usesJSON cache about every value.
type kind uint8

const (
	kindNone kind = iota // no compact form: an error
	kindTime             // encoder.time
	kindBool
	kindInt
	kindUint
	kindFloat
	kindString
	kindStruct
	kindPointer
	kindBytes // a slice of bytes, stored as they are
	kindSlice
	kindMap
)

// codec is how values of a type are stored.
type codec struct {
	kind kind
	// json: stored as its JSON (usesJSON) by the encoder, which the
	// decoder reads where a value is length-delimited (decoder.whole).
	json bool
	elem *codec // of a pointer's, slice's or map's elements
	key  *codec // of a map's keys
}

var codecs sync.Map // reflect.Type -> *codec; a cache

// codecOf returns the codec of t.
func codecOf(t reflect.Type) *codec {
	if c, ok := codecs.Load(t); ok {
		return c.(*codec)
	}
	actual, _ := codecs.LoadOrStore(t, newCodec(t, map[reflect.Type]*codec{}))
	return actual.(*codec)
}

// newCodec makes the codec of t; seen holds those begun, for a type
// that holds itself (type T []T).
func newCodec(t reflect.Type, seen map[reflect.Type]*codec) *codec {
	if c, ok := seen[t]; ok {
		return c
	}
	c := &codec{kind: kindOf(t), json: usesJSON(t)}
	seen[t] = c
	switch c.kind {
	case kindPointer, kindSlice:
		c.elem = newCodec(t.Elem(), seen)
	case kindMap:
		c.key, c.elem = newCodec(t.Key(), seen), newCodec(t.Elem(), seen)
	}
	return c
}

func kindOf(t reflect.Type) kind {
	if t == timeType {
		return kindTime
	}
	switch t.Kind() {
	case reflect.Bool:
		return kindBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kindInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return kindUint
	case reflect.Float32, reflect.Float64:
		return kindFloat
	case reflect.String:
		return kindString
	case reflect.Struct:
		return kindStruct
	case reflect.Pointer:
		return kindPointer
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return kindBytes
		}
		return kindSlice
	case reflect.Map:
		return kindMap
	}
	return kindNone
}

// wire returns the wire type v, a value of c's type, takes as a field.
func (c *codec) wire(v reflect.Value) uint64 {
	switch {
	case c.kind == kindTime:
		if _, ok := timeMillis(timeAt(v)); ok {
			return wireVarint
		}
		return wireBytes
	case c.json:
		return wireBytes
	case c.kind == kindBool || c.kind == kindInt || c.kind == kindUint:
		return wireVarint
	case c.kind == kindString:
		return wireString
	}
	return wireBytes
}

// delimited reports whether a value of c's type that stands alone in a
// slice or map has its length in front.
func (c *codec) delimited() bool { return c.json || c.kind == kindStruct || c.kind == kindPointer }

// timeAt returns the time.Time v holds, through its address when it has
// one, as v.Interface would copy it to the heap.
func timeAt(v reflect.Value) time.Time {
	if v.CanAddr() {
		return *v.Addr().Interface().(*time.Time)
	}
	return v.Interface().(time.Time)
}

// setTime sets v, a time.Time, to t.
func setTime(v reflect.Value, t time.Time) {
	if v.CanAddr() {
		*v.Addr().Interface().(*time.Time) = t
		return
	}
	v.Set(reflect.ValueOf(t))
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

type encoder struct {
	buf     []byte
	strings Strings // nil: no string is interned
	err     error   // of interning a string
}

func (e *encoder) uvarint(n uint64) { e.buf = binary.AppendUvarint(e.buf, n) }

func (e *encoder) structFields(v reflect.Value) error {
	p := planOf(v.Type())
	for i := range p.fields {
		f := &p.fields[i]
		fv, ok := fieldByIndex(v, f.index)
		if !ok || fv.IsZero() {
			continue
		}
		if k := fv.Kind(); f.omitEmpty && (k == reflect.Slice || k == reflect.Map) && fv.Len() == 0 {
			continue
		}
		if err := e.field(f, fv); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// fieldByIndex is v.FieldByIndex that reports a nil embedded pointer.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// field writes one field: its key, then its value in the wire type the
// value takes.
func (e *encoder) field(f *field, v reflect.Value) error {
	wire := f.codec.wire(v)
	e.uvarint(f.key | wire)
	if f.key == 0 {
		e.uvarint(uint64(len(f.name)))
		e.buf = append(e.buf, f.name...)
	}
	if e.strings != nil && wire == wireString && (f.intern || f.messageID) {
		if f.intern {
			e.shared(v.String())
		} else {
			e.messageID(v.String())
		}
		return e.err
	}
	if wire != wireBytes {
		return e.value(v, f.codec)
	}
	return e.delimited(v, f.codec)
}

// delimited writes v, of codec c, length-delimited: the value, then
// moved after its length.
func (e *encoder) delimited(v reflect.Value, c *codec) error {
	start := len(e.buf)
	if err := e.value(v, c); err != nil {
		return err
	}
	n := len(e.buf) - start
	var l [binary.MaxVarintLen64]byte
	ll := binary.PutUvarint(l[:], uint64(n))
	e.buf = append(e.buf, l[:ll]...)
	copy(e.buf[start+ll:], e.buf[start:start+n])
	copy(e.buf[start:], l[:ll])
	return nil
}

// timeMillis returns t as milliseconds since 1970 when that is all of
// it: whole milliseconds at offset zero (which JSON reads back as UTC).
func timeMillis(t time.Time) (int64, bool) {
	if _, off := t.Zone(); off != 0 || t.Nanosecond()%int(time.Millisecond) != 0 || t.IsZero() {
		return 0, false
	}
	return t.UnixMilli(), true
}

func zigzag(n int64) uint64   { return uint64(n<<1) ^ uint64(n>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// value writes v in the form of its type, whose codec is c.
func (e *encoder) value(v reflect.Value, c *codec) error {
	if c.json {
		b, err := json.Marshal(v.Interface())
		e.buf = append(e.buf, b...)
		return err
	}
	switch c.kind {
	case kindTime:
		return e.time(timeAt(v))
	case kindBool:
		if v.Bool() {
			e.uvarint(1)
		} else {
			e.uvarint(0)
		}
	case kindInt:
		e.uvarint(zigzag(v.Int()))
	case kindUint:
		e.uvarint(v.Uint())
	case kindFloat:
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v.Float()))
	case kindString:
		e.string(v.String())
	case kindStruct:
		return e.structFields(v)
	case kindPointer:
		if v.IsNil() {
			e.buf = append(e.buf, 0)
			return nil
		}
		e.buf = append(e.buf, 1)
		return e.value(v.Elem(), c.elem)
	case kindBytes:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(uint64(v.Len()) + 1)
		e.buf = append(e.buf, v.Bytes()...)
	case kindSlice:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(uint64(v.Len()) + 1)
		for i := range v.Len() {
			if err := e.element(v.Index(i), c.elem); err != nil {
				return err
			}
		}
	case kindMap:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(uint64(v.Len()) + 1)
		keys := v.MapKeys()
		if v.Type().Key().Kind() == reflect.String {
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		}
		for _, k := range keys {
			if err := e.element(k, c.key); err != nil {
				return err
			}
			if err := e.element(v.MapIndex(k), c.elem); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("no compact form for %s", v.Type())
	}
	return nil
}

// element writes a value, of codec c, that stands alone in a slice or
// map: a value of wire type 1 gets its length in front.
func (e *encoder) element(v reflect.Value, c *codec) error {
	if c.delimited() {
		return e.delimited(v, c)
	}
	return e.value(v, c)
}

// time writes t: uvarint 0 for the zero time, zigzag milliseconds<<1|1
// for whole milliseconds at offset zero, else its binary form's length<<1
// and the binary form (time.Time.MarshalBinary).
func (e *encoder) time(t time.Time) error {
	if t.IsZero() {
		e.uvarint(0)
		return nil
	}
	if ms, ok := timeMillis(t); ok {
		e.uvarint(zigzag(ms)<<1 | 1)
		return nil
	}
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	e.uvarint(uint64(len(b)) << 1)
	e.buf = append(e.buf, b...)
	return nil
}

// string writes s in the shortest of its forms that shares nothing in
// the table of strings: a known value, lower-case hex as its bytes, an
// id as its bytes, an id with a suffix (a Message-ID), or written out.
func (e *encoder) string(s string) {
	if n, ok := knownNumbers[s]; ok {
		e.uvarint(n<<3 | stringKnown)
		return
	}
	if len(s) >= 32 && len(s)%2 == 0 && isLowerHex(s) {
		e.uvarint(uint64(len(s)/2)<<3 | stringHex)
		e.buf, _ = hex.AppendDecode(e.buf, []byte(s)) // isLowerHex: valid
		return
	}
	if len(s) >= idChars {
		if id, ok := idArray(s[:idChars]); ok {
			rest := s[idChars:]
			if rest == "" {
				e.uvarint(idLen<<3 | stringID)
				e.buf = append(e.buf, id[:]...)
				return
			}
			e.uvarint(uint64(len(rest))<<3 | stringIDSuffix)
			e.buf = append(e.buf, id[:]...)
			e.buf = append(e.buf, rest...)
			return
		}
	}
	if raw, ok := ipBytes(s); ok && 1+len(raw) < uvarintLen(uint64(len(s))<<3)+len(s) {
		e.uvarint(uint64(len(raw)/16)<<3 | stringPacked)
		e.buf = append(e.buf, raw...)
		return
	}
	if !utf8.ValidString(s) {
		s = validUTF8(s)
	}
	e.uvarint(uint64(len(s))<<3 | stringInline)
	e.buf = append(e.buf, s...)
}

// shared writes s as its number in the table of strings, when there is
// one and s fits in it, else as string does. An evidence text is never
// shared: its times differ on almost every import row, so each would add
// a string of its own to the table (two keys); its packed form shares its
// source instead.
func (e *encoder) shared(s string) {
	if e.strings != nil && hasEvidenceKey(s) {
		if ev, ok := parseEvidence(s); ok {
			e.evidence(&ev)
		} else {
			e.string(s)
		}
		return
	}
	if e.strings == nil || len(s) > maxShared {
		e.string(s)
		return
	}
	n, err := e.strings.Intern(s)
	if err != nil {
		e.err = err
	}
	e.uvarint(n<<3 | stringInterned)
}

// messageID writes s, a Message-ID, as its id and the number of its
// domain ('@' and the rest) in the table of strings, or as string does
// when it is not one.
func (e *encoder) messageID(s string) {
	if len(s) > idChars && s[idChars] == '@' && len(s)-idChars <= maxShared {
		if id, ok := idArray(s[:idChars]); ok && len(s) > idChars+1 {
			n, err := e.strings.Intern(s[idChars:])
			if err != nil {
				e.err = err
			}
			e.uvarint(n<<3 | stringIDInterned)
			e.buf = append(e.buf, id[:]...)
			return
		}
	}
	e.string(s)
}

// evidenceKeys are the parts of an import row's evidence text
// (consent.ImportRow.Evidence), in their order, each left out when
// empty, joined by "; ": source, when it consented, how, and its last
// purchase. The times are RFC 3339 in UTC to the second.
var evidenceKeys = [4]string{"source=", "consented_at=", "method=", "last_purchase_at="}

// evidenceMethods are the import methods (consent.ConsentMethod) a
// packed evidence text names by number. Append only.
var evidenceMethods = []string{"checkbox_unticked", "double_opt_in", "prefilled", "contract_clause", "unknown"}

// evidenceTimes has bit i set when part i is a time.
const evidenceTimes = 1<<1 | 1<<3

// evidence is an evidence text in its parts.
type evidence struct {
	present byte      // bit i: part i is there
	text    [4]string // the source and the method
	secs    [4]int64  // the times, seconds since 1970
}

// hasEvidenceKey reports whether s starts as an evidence text does.
func hasEvidenceKey(s string) bool {
	for _, k := range evidenceKeys {
		if strings.HasPrefix(s, k) {
			return true
		}
	}
	return false
}

// parseEvidence returns the parts of s when s is an evidence text that
// they write back exactly (appendTo); anything else (a time with an
// offset or a fraction, parts out of order, a source holding the next
// part's key, invalid UTF-8) is not packed.
func parseEvidence(s string) (evidence, bool) {
	var ev evidence
	if !hasEvidenceKey(s) || !utf8.ValidString(s) {
		return ev, false
	}
	rest := s
	for i, key := range evidenceKeys {
		sep := "; " + key
		if ev.present == 0 {
			sep = key
		}
		if !strings.HasPrefix(rest, sep) {
			continue
		}
		rest = rest[len(sep):]
		end := len(rest)
		if i == 0 { // a source may hold "; ": it ends at a later part
			for _, k := range evidenceKeys[1:] {
				if j := strings.Index(rest, "; "+k); j >= 0 && j < end {
					end = j
				}
			}
		} else if j := strings.Index(rest, "; "); j >= 0 {
			end = j
		}
		v := rest[:end]
		rest = rest[end:]
		if evidenceTimes&(1<<i) != 0 {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return ev, false
			}
			ev.secs[i] = t.Unix()
		} else {
			ev.text[i] = v
		}
		ev.present |= 1 << i
	}
	if rest != "" || string(ev.appendTo(nil)) != s {
		return ev, false
	}
	return ev, true
}

// appendTo appends the evidence text.
func (ev *evidence) appendTo(b []byte) []byte {
	start := len(b)
	for i, key := range evidenceKeys {
		if ev.present&(1<<i) == 0 {
			continue
		}
		if len(b) > start {
			b = append(b, "; "...)
		}
		b = append(b, key...)
		if evidenceTimes&(1<<i) != 0 {
			b = time.Unix(ev.secs[i], 0).UTC().AppendFormat(b, time.RFC3339)
		} else {
			b = append(b, ev.text[i]...)
		}
	}
	return b
}

// evidence writes ev packed.
func (e *encoder) evidence(ev *evidence) {
	e.uvarint(packedEvidence<<3 | stringPacked)
	e.buf = append(e.buf, ev.present)
	for i := range evidenceKeys {
		switch {
		case ev.present&(1<<i) == 0:
		case evidenceTimes&(1<<i) != 0:
			e.uvarint(zigzag(ev.secs[i]))
		case i == 0:
			e.shared(ev.text[i]) // sources repeat
		default:
			if n := slices.Index(evidenceMethods, ev.text[i]); n >= 0 {
				e.uvarint(uint64(n) + 1)
				break
			}
			e.uvarint(0)
			e.string(ev.text[i])
		}
	}
}

// ipBytes returns the bytes of s when s is an IP address written as
// netip writes those bytes back (no zone, no leading zeros, lower case).
func ipBytes(s string) ([]byte, bool) {
	if len(s) < len("::") || len(s) > len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") {
		return nil, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, false
	}
	raw := a.AsSlice()
	if back, _ := netip.AddrFromSlice(raw); back.String() != s {
		return nil, false
	}
	return raw, true
}

func uvarintLen(n uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], n)
}

// validUTF8 replaces each byte of s that is not part of valid UTF-8 with
// U+FFFD, as encoding/json does, so a record reads back as it would from
// JSON.
func validUTF8(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.WriteString(s[i : i+n])
		}
		i += n
	}
	return sb.String()
}

// idChars is the length of a consent.NewID id.
const idChars = 36

// idBytes returns the bytes of s when s is an id as consent.NewID writes
// them: 36 characters of lower-case base32 ("extended hex" alphabet) that
// the bytes give back exactly (the last character's 4 spare bits zero).
func idBytes(s string) ([]byte, bool) {
	a, ok := idArray(s)
	if !ok {
		return nil, false
	}
	return a[:], true
}

// idArray is idBytes into an array, which the encoder appends from
// without allocating the bytes of every id it writes.
func idArray(s string) (out [idLen]byte, ok bool) {
	if len(s) != idChars {
		return out, false
	}
	var acc uint64
	nbits, n := 0, 0
	for i := range len(s) {
		c := s[i]
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'v':
			v = c - 'a' + 10
		default:
			return out, false
		}
		acc = acc<<5 | uint64(v)
		nbits += 5
		if nbits >= 8 {
			nbits -= 8
			out[n] = byte(acc >> nbits)
			n++
		}
	}
	if acc&(1<<nbits-1) != 0 { // not what the bytes give back
		return out, false
	}
	return out, true
}

const idAlphabet = "0123456789abcdefghijklmnopqrstuv"

// idString writes b as consent.NewID does.
func idString(b []byte) string {
	out := make([]byte, 0, (len(b)*8+4)/5)
	var acc uint64
	nbits := 0
	for _, x := range b {
		acc = acc<<8 | uint64(x)
		nbits += 8
		for nbits >= 5 {
			nbits -= 5
			out = append(out, idAlphabet[acc>>nbits&31])
		}
	}
	if nbits > 0 {
		out = append(out, idAlphabet[acc<<(5-nbits)&31])
	}
	return string(out)
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

type decoder struct {
	b       []byte
	strings Strings // nil: an interned string is an error
}

var errTruncated = errors.New("record truncated")

func (d *decoder) uvarint() (uint64, error) {
	n, l := binary.Uvarint(d.b)
	if l <= 0 {
		return 0, errTruncated
	}
	d.b = d.b[l:]
	return n, nil
}

func (d *decoder) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)) {
		return nil, errTruncated
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b, nil
}

func (d *decoder) structFields(v reflect.Value) error {
	p := planOf(v.Type())
	for len(d.b) > 0 {
		key, err := d.uvarint()
		if err != nil {
			return err
		}
		wire := key & 3
		var name []byte
		if key>>2 == 0 {
			n, err := d.uvarint()
			if err != nil {
				return err
			}
			if name, err = d.bytes(n); err != nil {
				return err
			}
		}
		fi, known := p.fieldOf(key>>2, name)
		if !known {
			if err := d.skip(wire); err != nil {
				return err
			}
			continue
		}
		f := &p.fields[fi]
		if (wire == wireString) != (f.codec.kind == kindString && !f.codec.json) {
			return fmt.Errorf("%s: stored as wire type %d, not as a %s", f.name, wire, f.typ)
		}
		fv := fieldForSet(v, f.index)
		if err := d.field(fv, wire, f.codec); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// fieldForSet is v.FieldByIndex that allocates nil embedded pointers.
func fieldForSet(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// skip passes over a value of an unknown field.
func (d *decoder) skip(wire uint64) error {
	switch wire {
	case wireVarint:
		_, err := d.uvarint()
		return err
	case wireBytes:
		n, err := d.uvarint()
		if err == nil {
			_, err = d.bytes(n)
		}
		return err
	case wireString:
		return d.skipString()
	}
	return fmt.Errorf("unknown wire type %d", wire)
}

// skipString passes over a string, not looking up shared ones.
func (d *decoder) skipString() error {
	h, err := d.uvarint()
	if err != nil {
		return err
	}
	switch h & 7 {
	case stringInline, stringHex, stringID:
		_, err = d.bytes(h >> 3)
	case stringIDSuffix:
		_, err = d.bytes(idLen + h>>3)
	case stringIDInterned:
		_, err = d.bytes(idLen)
	case stringPacked:
		if h>>3 != packedEvidence {
			_, err = d.bytes(4 + 12*(h>>3&1))
			break
		}
		_, err = d.evidence(true)
	}
	return err
}

// evidence reads a packed evidence text (after its header); skip passes
// over it instead, returning "".
func (d *decoder) evidence(skip bool) (string, error) {
	b, err := d.bytes(1)
	if err != nil {
		return "", err
	}
	ev := evidence{present: b[0]}
	if ev.present == 0 || ev.present >= 1<<len(evidenceKeys) {
		return "", fmt.Errorf("evidence of parts %#x", ev.present)
	}
	for i := range evidenceKeys {
		switch {
		case ev.present&(1<<i) == 0:
		case evidenceTimes&(1<<i) != 0:
			var u uint64
			u, err = d.uvarint()
			ev.secs[i] = unzigzag(u)
		case i == 0 && skip:
			err = d.skipString()
		case i == 0:
			ev.text[i], err = d.string()
		default: // the method: its number, or 0 and a string
			var n uint64
			n, err = d.uvarint()
			switch {
			case err != nil:
			case n > uint64(len(evidenceMethods)):
				err = fmt.Errorf("evidence method %d", n)
			case n > 0:
				ev.text[i] = evidenceMethods[n-1]
			case skip:
				err = d.skipString()
			default:
				ev.text[i], err = d.string()
			}
		}
		if err != nil {
			return "", err
		}
	}
	if skip {
		return "", nil
	}
	return string(ev.appendTo(nil)), nil
}

// field reads a field's value of wire type wire into v, of codec c.
func (d *decoder) field(v reflect.Value, wire uint64, c *codec) error {
	if wire != wireBytes {
		return d.value(v, c)
	}
	n, err := d.uvarint()
	if err != nil {
		return err
	}
	b, err := d.bytes(n)
	if err != nil {
		return err
	}
	inner := decoder{b: b, strings: d.strings}
	return inner.whole(v, c)
}

// whole reads v, of codec c, from all of d's bytes (a length-delimited
// value).
func (d *decoder) whole(v reflect.Value, c *codec) error {
	switch {
	case c.kind == kindTime:
		return d.value(v, c)
	case c.json:
		return json.Unmarshal(d.b, v.Addr().Interface())
	case c.kind == kindStruct:
		return d.structFields(v)
	}
	return d.value(v, c)
}

// value reads v in the form of its type, whose codec is c.
func (d *decoder) value(v reflect.Value, c *codec) error {
	switch c.kind {
	case kindTime:
		tm, err := d.time()
		setTime(v, tm)
		return err
	case kindBool:
		n, err := d.uvarint()
		v.SetBool(n != 0)
		return err
	case kindInt:
		n, err := d.uvarint()
		v.SetInt(unzigzag(n))
		return err
	case kindUint:
		n, err := d.uvarint()
		v.SetUint(n)
		return err
	case kindFloat:
		b, err := d.bytes(8)
		if err == nil {
			v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(b)))
		}
		return err
	case kindString:
		s, err := d.string()
		v.SetString(s)
		return err
	case kindPointer:
		b, err := d.bytes(1)
		if err != nil || b[0] == 0 {
			return err
		}
		p := reflect.New(v.Type().Elem())
		if err := d.whole(p.Elem(), c.elem); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case kindBytes, kindSlice:
		n, err := d.uvarint()
		if err != nil || n == 0 {
			return err
		}
		n--
		if n > uint64(len(d.b)) { // every element takes a byte at least
			return errTruncated
		}
		if c.kind == kindBytes {
			b, err := d.bytes(n)
			if err == nil {
				v.SetBytes(slices.Clone(b))
			}
			return err
		}
		s := reflect.MakeSlice(v.Type(), int(n), int(n))
		for i := range int(n) {
			if err := d.element(s.Index(i), c.elem); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case kindMap:
		n, err := d.uvarint()
		if err != nil || n == 0 {
			return err
		}
		n--
		if n > uint64(len(d.b)) {
			return errTruncated
		}
		t := v.Type()
		m := reflect.MakeMapWithSize(t, int(n))
		// One key and one element for all entries, as SetMapIndex copies
		// them: two allocations less per entry.
		k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
		for range n {
			k.SetZero()
			e.SetZero()
			if err := d.element(k, c.key); err != nil {
				return err
			}
			if err := d.element(e, c.elem); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	}
	return fmt.Errorf("no compact form for %s", v.Type())
}

// element reads a value, of codec c, that stands alone in a slice or
// map.
func (d *decoder) element(v reflect.Value, c *codec) error {
	if !c.delimited() {
		return d.value(v, c)
	}
	n, err := d.uvarint()
	if err != nil {
		return err
	}
	b, err := d.bytes(n)
	if err != nil {
		return err
	}
	inner := decoder{b: b, strings: d.strings}
	if c.kind == kindPointer {
		return inner.value(v, c)
	}
	return inner.whole(v, c)
}

func (d *decoder) time() (time.Time, error) {
	h, err := d.uvarint()
	switch {
	case err != nil || h == 0:
		return time.Time{}, err
	case h&1 == 1:
		return time.UnixMilli(unzigzag(h >> 1)).UTC(), nil
	}
	b, err := d.bytes(h >> 1)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	return t, t.UnmarshalBinary(b)
}

func (d *decoder) string() (string, error) {
	h, err := d.uvarint()
	if err != nil {
		return "", err
	}
	n := h >> 3
	switch h & 7 {
	case stringKnown:
		if n >= uint64(len(knownStrings)) {
			return "", fmt.Errorf("unknown string %d", n)
		}
		return knownStrings[n], nil
	case stringInline:
		b, err := d.bytes(n)
		return string(b), err
	case stringHex:
		b, err := d.bytes(n)
		return hex.EncodeToString(b), err
	case stringID:
		b, err := d.bytes(n)
		return idString(b), err
	case stringInterned:
		if d.strings == nil {
			return "", errors.New("an interned string, read without the table")
		}
		return d.strings.Lookup(n)
	case stringIDSuffix:
		id, err := d.bytes(idLen)
		if err != nil {
			return "", err
		}
		rest, err := d.bytes(n)
		return idString(id) + string(rest), err
	case stringIDInterned:
		id, err := d.bytes(idLen)
		if err != nil {
			return "", err
		}
		if d.strings == nil {
			return "", errors.New("an interned string, read without the table")
		}
		rest, err := d.strings.Lookup(n)
		return idString(id) + rest, err
	case stringPacked:
		if n == packedEvidence {
			return d.evidence(false)
		}
		if n > packedIPv6 {
			return "", fmt.Errorf("packed string of kind %d", n)
		}
		raw, err := d.bytes(4 + 12*n)
		if err != nil {
			return "", err
		}
		a, _ := netip.AddrFromSlice(raw)
		return a.String(), nil
	}
	return "", fmt.Errorf("unknown string kind %d", h&7)
}

// Ledger events leave out what their key and the event before them give:
// Seq is the key, and Prev, which is the hash of the event before on any
// chain that verifies, is left out too and the record starts with
// EventMagic. An event whose Prev is something else (from a database
// whose chain was broken before it was converted) keeps it and starts
// with Magic. Hashes and digests, lower-case hex, take their 32 bytes.
// What is hashed never changes: the Merkle tree's leaves are still the
// events' JSON (consent.Event.LeafData) and a personal record's digest
// that of its JSON (consent.Personal.Encode).

// An event whose Prev is left out and whose subscriber's id is one of
// consent.NewID's leaves its time out as well, for its offset from the
// time the id starts with (EventAtIDMagic): the event of a new
// subscriber comes within milliseconds of its id, so its time takes a
// byte or two instead of eight, and a later one's five or six. Only
// with a table of strings, which a store has only from the version on
// that refuses an older optin (bbolt's schema version 7, PostgreSQL's
// migration 19): an older reader would read such an event without its
// time.

// MarshalEvent returns the stored form of ev, whose predecessor's hash
// is prevHash ("" for the first event), its source and page numbered in
// strings.
func MarshalEvent(ev *consent.Event, prevHash string, strings Strings) ([]byte, error) {
	return marshalEvent(ev, prevHash, false, strings)
}

// MarshalEventApart is MarshalEvent for a store that keeps an event's
// subscriber beside its record (PostgreSQL's ledger, in a column): the
// record leaves the subscriber out, its time still an offset from the
// subscriber's id. UnmarshalEventApart reads it.
func MarshalEventApart(ev *consent.Event, prevHash string, strings Strings) ([]byte, error) {
	return marshalEvent(ev, prevHash, true, strings)
}

// marshalEvent is MarshalEvent, leaving the subscriber out with apart.
func marshalEvent(ev *consent.Event, prevHash string, apart bool, strings Strings) ([]byte, error) {
	e := *ev
	e.Seq = 0
	if apart {
		e.Subscriber = ""
	}
	derived := e.Prev == prevHash
	if derived {
		e.Prev = ""
	}
	var offset []byte
	if at, ok := idMillis(ev.Subscriber); ok && derived && strings != nil {
		if ms, ok := timeMillis(e.Time); ok {
			offset = binary.AppendUvarint(nil, zigzag(ms-at))
			e.Time = time.Time{}
		}
	}
	b, err := marshal(reflect.ValueOf(&e).Elem(), strings)
	if err != nil {
		return nil, fmt.Errorf("record: event %d: %w", ev.Seq, err)
	}
	switch {
	case offset != nil:
		b = append(append([]byte{EventAtIDMagic}, offset...), b[1:]...)
	case derived:
		b[0] = EventMagic
	}
	return b, nil
}

// idMillis returns the milliseconds since 1970 that id starts with when
// it is one of consent.NewID's.
func idMillis(id string) (int64, bool) {
	b, ok := idArray(id)
	if !ok {
		return 0, false
	}
	var ms int64
	for _, c := range b[:6] {
		ms = ms<<8 | int64(c)
	}
	return ms, true
}

// UnmarshalEvent decodes event seq stored as b, compact or JSON; prevHash
// returns the hash of the event before it when b left Prev out.
func UnmarshalEvent(b []byte, seq uint64, prevHash func() (string, error), strings Strings, ev *consent.Event) error {
	return UnmarshalEventApart(b, seq, "", prevHash, strings, ev)
}

// UnmarshalEventApart is UnmarshalEvent of an event whose store keeps its
// subscriber beside it (MarshalEventApart): an event that left its
// subscriber out gets subscriber. Events that hold theirs read as they
// are.
func UnmarshalEventApart(b []byte, seq uint64, subscriber string, prevHash func() (string, error), strings Strings, ev *consent.Event) error {
	if err := unmarshalWith(b, ev, strings); err != nil {
		return err
	}
	if ev.Subscriber == "" {
		ev.Subscriber = subscriber
	}
	if !IsCompact(b) {
		return nil // JSON, complete
	}
	ev.Seq = seq
	if b[0] == EventAtIDMagic {
		offset, n := binary.Uvarint(b[1:])
		at, ok := idMillis(ev.Subscriber)
		if n <= 0 || !ok {
			return fmt.Errorf("record: event %d: no time from subscriber %q", seq, ev.Subscriber)
		}
		ev.Time = time.UnixMilli(at + unzigzag(offset)).UTC()
	}
	if (b[0] == EventMagic || b[0] == EventAtIDMagic) && seq > 1 {
		prev, err := prevHash()
		if err != nil {
			return err
		}
		ev.Prev = prev
	}
	return nil
}

// EventHash returns the hash of a stored event without decoding the rest.
func EventHash(b []byte) (string, error) {
	var h struct {
		Hash string `json:"hash"`
	}
	err := Unmarshal(b, &h)
	return h.Hash, err
}

// WithoutString returns compact record b without its field name when
// that holds value written out (not shared), and whether it did: a
// store leaving the field to another record skips decoding and encoding
// the whole record.
func WithoutString(b []byte, name, value string) ([]byte, bool) {
	n, ok := fieldNumbers[name]
	if !ok || len(b) == 0 || b[0] != Magic {
		return nil, false
	}
	d := decoder{b: b[1:]}
	for len(d.b) > 0 {
		start := len(b) - len(d.b)
		key, err := d.uvarint()
		if err != nil {
			return nil, false
		}
		wire := key & 3
		if key>>2 == 0 { // an inline name
			l, err := d.uvarint()
			if err != nil {
				return nil, false
			}
			if _, err := d.bytes(l); err != nil {
				return nil, false
			}
		}
		if key>>2 != n+1 || wire != wireString {
			if d.skip(wire) != nil {
				return nil, false
			}
			continue
		}
		h, err := d.uvarint()
		if err != nil || h&7 != stringInline {
			return nil, false
		}
		s, err := d.bytes(h >> 3)
		if err != nil || string(s) != value {
			return nil, false
		}
		end := len(b) - len(d.b)
		return append(append(make([]byte, 0, len(b)-(end-start)), b[:start]...), b[end:]...), true
	}
	return nil, false
}

// MarshalPersonal returns the stored form of a personal record whose
// JSON (as consent.Personal.Encode made it) is data.
func MarshalPersonal(data []byte) ([]byte, error) {
	var p consent.Personal
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("record: personal record: %w", err)
	}
	return Marshal(&p)
}

// PersonalJSON returns the JSON of a stored personal record, compact or
// JSON, reading shared strings from strings: the form its digest is of.
func PersonalJSON(b []byte, strings Strings) ([]byte, error) {
	if !IsCompact(b) {
		return slices.Clone(b), nil
	}
	var p consent.Personal
	if err := unmarshalWith(b, &p, strings); err != nil {
		return nil, err
	}
	data, _ := p.Encode()
	return data, nil
}

// Strings is a database's table of shared strings: records name a
// string stored there by its number. A string once numbered keeps its
// number as long as a record may refer to it.
type Strings interface {
	// Intern returns the number of s, numbering it when new.
	Intern(s string) (uint64, error)
	// Lookup returns the string numbered n.
	Lookup(n uint64) (string, error)
}

// BucketStrings is the bbolt store's table of strings, in one bucket:
// under 0x00 and the be64 number the string, under 0x01 and the string
// its number.
type BucketStrings struct{ B *bbolt.Bucket }

// Intern returns the number of s, numbering it when new.
func (t BucketStrings) Intern(s string) (uint64, error) {
	rk := append([]byte{1}, s...)
	if v := t.B.Get(rk); v != nil {
		n, _ := binary.Uvarint(v)
		return n, nil
	}
	n, err := t.B.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := t.B.Put(rk, binary.AppendUvarint(nil, n)); err != nil {
		return 0, err
	}
	return n, t.B.Put(binary.BigEndian.AppendUint64([]byte{0}, n), []byte(s))
}

// Lookup returns the string numbered n.
func (t BucketStrings) Lookup(n uint64) (string, error) {
	if t.B == nil {
		return "", fmt.Errorf("string %d: no table of strings", n)
	}
	v := t.B.Get(binary.BigEndian.AppendUint64([]byte{0}, n))
	if v == nil {
		return "", fmt.Errorf("string %d missing", n)
	}
	return string(v), nil
}

// ID returns the stored form of an id: its bytes when it is one that
// consent.NewID makes, else the id as it is (which is never 22 bytes
// long: ids are 36 characters).
func ID(id string) []byte {
	if b, ok := idBytes(id); ok {
		return b
	}
	return []byte(id)
}

// IDString reads an id stored by ID.
func IDString(b []byte) string {
	if len(b) == idLen {
		return idString(b)
	}
	return string(b)
}
