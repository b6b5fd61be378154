package postgres

import (
	"optin/internal/consent"
)

// Reading and writing the records that many use cases share.

// subscriber returns subscriber id, or nil when it does not exist.
func subscriber(c conn, id string) (*consent.Subscriber, error) {
	sub := new(consent.Subscriber)
	ok, err := c.get(sub, "SELECT data FROM subscribers WHERE id = $1", id)
	if err != nil || !ok {
		return nil, err
	}
	return sub, nil
}

// loadSubscriber returns subscriber id or an ENotFound *Error.
func loadSubscriber(c conn, id string) (*consent.Subscriber, error) {
	sub, err := subscriber(c, id)
	if err == nil && sub == nil {
		err = consent.Errorf(consent.ENotFound, "subscriber %q not found", id)
	}
	return sub, err
}

// subscriberByKey returns the subscriber holding the address with
// case-folded key, or nil.
func subscriberByKey(c conn, key string) (*consent.Subscriber, error) {
	sub := new(consent.Subscriber)
	ok, err := c.get(sub, "SELECT data FROM subscribers WHERE email_key = $1", key)
	if err != nil || !ok {
		return nil, err
	}
	return sub, nil
}

// putSubscriber stores sub under its id and address.
func putSubscriber(t *tx, sub *consent.Subscriber) error {
	b, err := encode(sub)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET email_key = EXCLUDED.email_key, data = EXCLUDED.data`,
		sub.ID, consent.AddressKey(sub.Email), b)
}

// request returns request id, or nil when it does not exist.
func request(c conn, id string) (*consent.Request, error) {
	req := new(consent.Request)
	ok, err := c.get(req, "SELECT data FROM requests WHERE id = $1", id)
	if err != nil || !ok {
		return nil, err
	}
	return req, nil
}

// putRequest stores req.
func putRequest(t *tx, req *consent.Request) error {
	b, err := encode(req)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO requests (id, subscriber, data) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data`, req.ID, req.Subscriber, b)
}

// requestAndSubscriber returns request id and its subscriber, or an
// ENotFound *Error when either is gone.
func requestAndSubscriber(c conn, id string) (*consent.Request, *consent.Subscriber, error) {
	gone := consent.Errorf(consent.ENotFound, "this link is no longer valid")
	req, err := request(c, id)
	if err != nil {
		return nil, nil, err
	}
	if req == nil {
		return nil, nil, gone
	}
	sub, err := subscriber(c, req.Subscriber)
	if err != nil {
		return nil, nil, err
	}
	if sub == nil {
		return nil, nil, gone
	}
	return req, sub, nil
}

// openRequest returns sub's pending request, or nil when it has none.
func openRequest(c conn, sub *consent.Subscriber) (*consent.Request, error) {
	if sub == nil || sub.PendingRequest == "" {
		return nil, nil
	}
	return request(c, sub.PendingRequest)
}

// putWording stores wording under hash once.
func putWording(t *tx, hash string, w consent.Wording) error {
	b, err := encode(w)
	if err != nil {
		return err
	}
	return t.exec("INSERT INTO wordings (hash, data) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING", hash, b)
}

// putJSON stores v as the data of the row with key in a table whose only
// other column is its key column.
func putJSON(t *tx, table, key string, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	return t.exec("INSERT INTO "+table+" (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data", key, b)
}

// mustGet decodes the row id of table (keyed by id) into v, or returns an
// ENotFound *Error naming what.
func mustGet(c conn, table, id string, v any, what string) error {
	ok, err := c.get(v, "SELECT data FROM "+table+" WHERE id = $1", id)
	if err == nil && !ok {
		err = consent.Errorf(consent.ENotFound, "%s %q not found", what, id)
	}
	return err
}
