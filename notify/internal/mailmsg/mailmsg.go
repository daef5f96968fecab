package mailmsg

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
)

// Header names set on every message.
const (
	HeaderKey  = notify.KeyHeader  // the send-once key
	HeaderKind = notify.KindHeader // the notification kind
)

// MessageID returns the Message-ID (without angle brackets) for a send-once key: stable,
// so a message resent after a dropped connection carries the same id and downstream
// systems can recognise the duplicate. An empty key returns "": Build then lets go-mail
// generate a random id.
func MessageID(key, from string) string {
	if key == "" {
		return "" // let go-mail generate a random one
	}
	domain := "renewkit.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16]) + ".renewkit@" + domain
}

// Build returns a multipart/alternative (text, then HTML) UTF-8 message for n rendered as
// m, from the RFC 5322 address from ("Name <addr>" or "addr").
func Build(n billing.Notification, m notify.Message, from string, date time.Time) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP),
		gomail.WithNoDefaultUserAgent())
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("from address %q: %w", from, err)
	}
	if n.To.Name != "" {
		if err := msg.AddToFormat(n.To.Name, n.To.Email); err != nil {
			return nil, fmt.Errorf("recipient %q: %w", n.To.Email, err)
		}
	} else if err := msg.To(n.To.Email); err != nil {
		return nil, fmt.Errorf("recipient %q: %w", n.To.Email, err)
	}
	msg.Subject(m.Subject)
	if id := MessageID(n.Key, from); id != "" {
		msg.SetMessageIDWithValue(id)
	} else {
		msg.SetMessageID()
	}
	msg.SetDateWithValue(date)
	msg.SetGenHeader(gomail.Header(HeaderKey), n.Key)
	msg.SetGenHeader(gomail.Header(HeaderKind), string(n.Kind))
	msg.SetGenHeader(gomail.HeaderXMailer, "renewkit")
	msg.SetGenHeader("Content-Language", m.Locale)
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return msg, nil
}
