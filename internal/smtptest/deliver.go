package smtptest

import (
	"github.com/emersion/go-smtp"
)

// Deliver hands one mail from from to to the SMTP server at addr, in
// plain text with no authentication (as one mail server hands mail to
// another), and returns the server's first refusal as an *smtp.SMTPError.
func Deliver(addr, from, to string, data []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
