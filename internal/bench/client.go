package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// client is one keep-alive HTTP/1.1 connection of the load generator. It
// writes each request in one write and reads the answer with net/http's
// response parser. net/http's Client cost about 38 us of CPU per request
// (a reader and a writer goroutine per connection, a header copy per
// request), and with the generator on the same cores as the server, that
// CPU is taken from the server under test.
type client struct {
	addr    string
	timeout time.Duration
	path    string // where post sends
	head    []byte // the request after its first line, up to the Content-Length value
	conn    net.Conn
	r       *bufio.Reader
	buf     []byte
}

// newClient prepares POST requests to rawURL with header.
func newClient(rawURL string, header http.Header, timeout time.Duration) (*client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("bench: %s: only http:// URLs are supported", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	head := fmt.Appendf(nil, "Host: %s\r\n", u.Host)
	for k, vs := range header {
		for _, v := range vs {
			head = fmt.Appendf(head, "%s: %s\r\n", http.CanonicalHeaderKey(k), v)
		}
	}
	head = append(head, "Content-Length: "...)
	return &client{addr: addr, timeout: timeout, path: u.RequestURI(), head: head}, nil
}

// post sends body to the client's URL and returns the answer's status.
// Any error closes the connection; the next post dials a new one.
func (c *client) post(body []byte) (int, error) { return c.postTo(c.path, body) }

// postTo is post to path (absolute, on the same server).
func (c *client) postTo(path string, body []byte) (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		c.close()
		return 0, err
	}
	c.buf = append(append(append(c.buf[:0], "POST "...), path...), " HTTP/1.1\r\n"...)
	c.buf = append(c.buf, c.head...)
	c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
	c.buf = append(c.buf, "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.conn.Write(c.buf); err != nil {
		c.close()
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	return resp.StatusCode, err
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}
