// Package webhook delivers optin's events to the endpoints operators
// register, signed the Standard Webhooks way, from the delivery queue the
// store fills in each event's transaction. It is the only package that
// sends HTTP requests to them.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// Headers of a delivery (Standard Webhooks).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Sign returns the webhook-signature header of a message: "v1," and the
// base64 HMAC-SHA256 under key of the message id, the timestamp in Unix
// seconds and the body, joined by dots (Standard Webhooks, "Signature
// scheme"). The timestamp header must carry the same seconds.
func Sign(key []byte, msgID string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
