package smtpnotify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
)

// TLSPolicy says how the connection is encrypted.
type TLSPolicy int

const (
	// TLSMandatory (the zero value) upgrades with STARTTLS and fails when the server
	// does not offer it. Default port 587.
	TLSMandatory TLSPolicy = iota
	// TLSImplicit connects with TLS from the first byte (SMTPS). Default port 465.
	TLSImplicit
	// TLSOpportunistic uses STARTTLS when the server offers it, plain text otherwise.
	TLSOpportunistic
	// TLSNone never encrypts: only for local relays and test servers.
	TLSNone
)

func (p TLSPolicy) String() string {
	switch p {
	case TLSMandatory:
		return "starttls"
	case TLSImplicit:
		return "implicit"
	case TLSOpportunistic:
		return "opportunistic"
	case TLSNone:
		return "none"
	}
	return fmt.Sprintf("TLSPolicy(%d)", int(p))
}

// ParseTLSPolicy maps "starttls"/"mandatory", "implicit"/"ssl"/"tls"/"smtps",
// "opportunistic" and "none"/"plain" (case-insensitive) to a policy; "" is TLSMandatory.
func ParseTLSPolicy(s string) (TLSPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "starttls", "mandatory":
		return TLSMandatory, nil
	case "implicit", "ssl", "tls", "smtps":
		return TLSImplicit, nil
	case "opportunistic":
		return TLSOpportunistic, nil
	case "none", "plain":
		return TLSNone, nil
	}
	return 0, fmt.Errorf("%w: unknown TLS policy %q: use starttls, implicit, opportunistic or none", ErrInvalidConfig, s)
}

// DefaultMaxConns is Config.MaxConns's default, equal to billing.Config.SendConcurrency's.
const DefaultMaxConns = 8

// Config configures a Notifier. Host, From and Renderer are required; every other zero
// value is the documented default.
type Config struct {
	// Host is the SMTP server name (SMTP_HOST in the original application). Required.
	Host string
	// Port (SMTP_PORT). Default 465 with TLSImplicit, 587 otherwise.
	Port int
	// Username and Password (SMTP_USER, SMTP_PASSWORD) enable SMTP AUTH when Username is
	// set; the strongest mechanism the server offers is used, and PLAIN/LOGIN only over TLS
	// (or to localhost). The password is never logged.
	Username string
	Password string
	// From is the sender, "Name <addr>" or "addr" (SMTP_FROM). Required.
	From string
	// TLSPolicy. Default TLSMandatory (STARTTLS required).
	TLSPolicy TLSPolicy
	// TLSConfig for STARTTLS and implicit TLS. Default: verify Host, TLS 1.2 or newer.
	TLSConfig *tls.Config
	// HELO is the name sent in EHLO. Default: the machine's host name.
	HELO string
	// Timeout bounds connecting and each SMTP command. Default 15s.
	Timeout time.Duration
	// MaxAttempts is how many times a transient failure (a 4xx reply, a dropped connection,
	// a timeout) is tried within one Notify. Default 3; 1 disables retries. Permanent
	// failures (5xx) are never retried.
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles up to MaxBackoff, with
	// ±20% jitter. Defaults 250ms and 2s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// RetryBudget bounds the time one Notify spends on retries: a retry whose wait would
	// end later than RetryBudget after the first attempt started is not made, and the last
	// error is returned. Default 3s. With the defaults a server answering 421 to everything
	// costs each message three attempts and under a second of waiting; an unresponsive one
	// costs one Timeout. A job that stops after a few consecutive failures (billing's
	// circuit breaker) therefore spends seconds on an outage, and its next run retries.
	RetryBudget time.Duration
	// MaxConns is the number of pooled connections, and so of SMTP transactions in
	// flight at once; further Notify calls wait for a free connection (or their context).
	// Default 8, the default of billing.Config.SendConcurrency: keep the two equal so
	// every concurrent send has its own connection.
	MaxConns int
	// IdleTimeout closes pooled connections unused this long (servers drop idle
	// clients after a few minutes). Default 30s.
	IdleTimeout time.Duration
	// Renderer renders the messages. Required: notify.NewRenderer(notify.Config{...}).
	Renderer *notify.Renderer
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Clock is the clock for Date headers and idle tracking. Default: the wall clock.
	Clock billing.Clock
	// Now is read when Clock is nil.
	//
	// Deprecated: set Clock.
	Now func() time.Time
}

// Validate reports every problem with the configuration, joined with errors.Join.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Host == "" {
		bad("missing Host: set the SMTP server name (SMTP_HOST), e.g. smtp.sendgrid.net")
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("Port %d out of range", c.Port)
	}
	if c.From == "" {
		bad("missing From: set the sender address (SMTP_FROM), e.g. \"Acme <noreply@acme.com>\"")
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		bad("From %q is not an email address: %v", c.From, err)
	}
	if c.Password != "" && c.Username == "" {
		bad("Password set without Username: set SMTP_USER too")
	}
	if c.TLSPolicy < TLSMandatory || c.TLSPolicy > TLSNone {
		bad("unknown TLSPolicy %d", int(c.TLSPolicy))
	}
	if c.Timeout < 0 || c.Backoff < 0 || c.MaxBackoff < 0 || c.RetryBudget < 0 || c.IdleTimeout < 0 {
		bad("Timeout, Backoff, MaxBackoff, RetryBudget and IdleTimeout must not be negative: use 0 for the default")
	}
	if c.MaxAttempts < 0 || c.MaxConns < 0 {
		bad("MaxAttempts and MaxConns must not be negative: use 0 for the defaults (3 and 8)")
	}
	if c.Renderer == nil {
		bad("missing Renderer: pass notify.NewRenderer(notify.Config{FrontendURL: ...})")
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Port == 0 {
		c.Port = 587
		if c.TLSPolicy == TLSImplicit {
			c.Port = 465
		}
	}
	if c.TLSConfig == nil {
		c.TLSConfig = &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	} else {
		c.TLSConfig = c.TLSConfig.Clone()
		if c.TLSConfig.ServerName == "" {
			c.TLSConfig.ServerName = c.Host
		}
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.Backoff == 0 {
		c.Backoff = 250 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 2 * time.Second
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = 3 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Clock != nil:
		c.Now = c.Clock.Now
	case c.Now == nil:
		c.Now = time.Now
	}
	return c
}

// LogValue keeps the password out of logs: a Config logged with slog shows "[redacted]".
func (c Config) LogValue() slog.Value {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return slog.GroupValue(slog.String("host", c.Host), slog.Int("port", c.Port),
		slog.String("username", c.Username), slog.String("password", pw),
		slog.String("from", c.From), slog.String("tls", c.TLSPolicy.String()))
}

// String keeps the password out of fmt output.
func (c Config) String() string {
	return fmt.Sprintf("smtpnotify.Config{Host:%s Port:%d Username:%s Password:[redacted] From:%s TLS:%s}",
		c.Host, c.Port, c.Username, c.From, c.TLSPolicy)
}
