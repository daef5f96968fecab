package smtpnotify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify/internal/mailmsg"
)

// Notifier sends notifications by SMTP over a pool of up to Config.MaxConns connections
// that are reused across sends, redialled when they fail and closed when idle. It is safe
// for concurrent use, and concurrent Notify calls run their SMTP transactions in parallel,
// one per connection. Call Shutdown (or Close) when done.
type Notifier struct {
	cfg    Config
	client *gomail.Client // holds the connection settings; sessions are per pooled conn

	sem chan struct{} // one token per connection in use

	mu     sync.Mutex
	idle   []*conn // most recently used last
	inUse  map[*conn]struct{}
	open   int // connections idle, in use or being dialled; at most MaxConns
	closed bool

	stop chan struct{}
	done chan struct{}

	dials, sends, retries atomic.Int64
}

var _ billing.Notifier = (*Notifier)(nil)

type conn struct {
	c        *smtp.Client
	raw      net.Conn // the TCP connection, closed to abort a cancelled send
	lastUsed time.Time
}

type rawConnSlot struct{}

// New validates cfg and returns a Notifier. It does not connect: the first Notify does.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Notifier{
		cfg:   cfg,
		sem:   make(chan struct{}, cfg.MaxConns),
		inUse: make(map[*conn]struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	opts := []gomail.Option{
		gomail.WithPort(cfg.Port),
		gomail.WithTimeout(cfg.Timeout),
		gomail.WithTLSConfig(cfg.TLSConfig),
		gomail.WithDialContextFunc(n.dial),
		gomail.WithoutNoop(), // a stale pooled connection is detected by the send and redialled
		gomail.WithoutRset(), // no RSET after a completed transaction
	}
	switch cfg.TLSPolicy {
	case TLSMandatory:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default: // TLSNone, and TLSImplicit where n.dial does the TLS handshake itself
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(cfg.HELO))
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthSCRAMSHA256PLUS, gomail.SMTPAuthSCRAMSHA256,
				gomail.SMTPAuthSCRAMSHA1PLUS, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthCramMD5,
				gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
	}
	client, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	n.client = client
	go n.reaper()
	return n, nil
}

// dial connects, doing the TLS handshake itself for TLSImplicit, and leaves the TCP
// connection in the context's slot so a cancelled send can close it.
func (n *Notifier) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: n.cfg.Timeout}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if slot, ok := ctx.Value(rawConnSlot{}).(*net.Conn); ok {
		*slot = raw
	}
	if n.cfg.TLSPolicy != TLSImplicit {
		return raw, nil
	}
	tc := tls.Client(raw, n.cfg.TLSConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return tc, nil
}

// Stats counts what the notifier did since New.
type Stats struct {
	Dials   int64 // connections opened
	Sends   int64 // messages accepted by the server
	Retries int64 // attempts after a transient failure
	Idle    int   // pooled connections now idle
	InUse   int   // connections now carrying a send
	Open    int   // connections idle, in use or being dialled: at most MaxConns
}

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	n.mu.Lock()
	idle, inUse, open := len(n.idle), len(n.inUse), n.open
	n.mu.Unlock()
	return Stats{Dials: n.dials.Load(), Sends: n.sends.Load(), Retries: n.retries.Load(),
		Idle: idle, InUse: inUse, Open: open}
}

// Notify renders n and sends it on a pooled connection, retrying transient failures with
// backoff up to MaxAttempts times within RetryBudget; 5xx replies are not retried. It
// returns a *SendError (wrapping billing.ErrUndeliverable when permanent), the context's
// error when ctx ends first, or ErrClosed after Shutdown. Up to MaxConns calls run their
// SMTP transactions in parallel; more wait for a free connection.
func (n *Notifier) Notify(ctx context.Context, note billing.Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := n.cfg.Renderer.RenderNotification(note)
	if err != nil {
		return err // wraps billing.ErrUndeliverable
	}
	msg, err := mailmsg.Build(note, m, n.cfg.From, n.cfg.Now())
	if err != nil {
		return &SendError{Op: "message", Permanent: true, Attempts: 0, Err: err}
	}
	backoff := n.cfg.Backoff
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := n.sendOnce(ctx, msg)
		if err == nil {
			n.sends.Add(1)
			n.cfg.Logger.DebugContext(ctx, "smtpnotify: sent", "kind", note.Kind, "key", note.Key,
				"to", note.To.Email, "attempts", attempt)
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("smtpnotify: send of %s %q abandoned: %w (last error: %v)", note.Kind, note.Key, cerr, err)
		}
		se := classify(err)
		se.Attempts = attempt
		if se.Permanent || attempt >= n.cfg.MaxAttempts {
			n.cfg.Logger.WarnContext(ctx, "smtpnotify: send failed", "kind", note.Kind, "key", note.Key,
				"to", note.To.Email, "code", se.Code, "permanent", se.Permanent, "attempts", attempt, "error", se.Err)
			return se
		}
		wait := jitter(backoff)
		if time.Since(start)+wait > n.cfg.RetryBudget {
			n.cfg.Logger.WarnContext(ctx, "smtpnotify: send failed, retry budget spent", "kind", note.Kind,
				"key", note.Key, "to", note.To.Email, "code", se.Code, "attempts", attempt,
				"budget", n.cfg.RetryBudget, "error", se.Err)
			return se
		}
		n.retries.Add(1)
		n.cfg.Logger.InfoContext(ctx, "smtpnotify: transient failure, retrying", "kind", note.Kind,
			"key", note.Key, "code", se.Code, "attempt", attempt, "wait", wait, "error", se.Err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("smtpnotify: send of %s %q abandoned: %w (last error: %v)", note.Kind, note.Key, ctx.Err(), se)
		case <-n.stop:
			t.Stop()
			return fmt.Errorf("%w (last error: %v)", ErrClosed, se)
		case <-t.C:
		}
		backoff = min(backoff*2, n.cfg.MaxBackoff)
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// dialError marks an error from opening a session (connect, TLS, EHLO, AUTH).
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// sendOnce sends msg on a pooled connection. A reused connection that turns out to be
// dead (no SMTP reply at all) is dropped and the send is tried once more on a newly
// dialled one (not another idle one, which may have died the same way), at no cost to
// the retry budget.
func (n *Notifier) sendOnce(ctx context.Context, msg *gomail.Msg) error {
	for fresh := false; ; fresh = true {
		c, reused, err := n.acquire(ctx, fresh)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { _ = c.raw.Close() })
		err = n.client.SendWithSMTPClient(c.c, msg)
		cancelled := !stop()
		n.release(c, err == nil && !cancelled)
		if err == nil || cancelled || !reused || fresh {
			return err
		}
		if se := classify(err); se.Code != 0 {
			return err // the server answered: the connection was alive
		}
		n.cfg.Logger.DebugContext(ctx, "smtpnotify: pooled connection was dead; redialling", "error", err)
	}
}

// acquire takes a connection token and returns an idle connection (unless dial is set)
// or a new one, and whether it was reused.
func (n *Notifier) acquire(ctx context.Context, dial bool) (*conn, bool, error) {
	select {
	case n.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-n.stop:
		return nil, false, ErrClosed
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		<-n.sem
		return nil, false, ErrClosed
	}
	var evict *conn
	if k := len(n.idle); k > 0 {
		if !dial {
			c := n.idle[k-1]
			n.idle = n.idle[:k-1]
			n.inUse[c] = struct{}{}
			n.mu.Unlock()
			return c, true, nil
		}
		if n.open >= n.cfg.MaxConns {
			// Make room for the new connection: never more than MaxConns are open.
			evict = n.idle[0]
			copy(n.idle, n.idle[1:])
			n.idle[k-1] = nil
			n.idle = n.idle[:k-1]
			n.open--
		}
	}
	// Here open < MaxConns: every open connection that is not idle holds one of the
	// other tokens.
	n.open++
	n.mu.Unlock()
	if evict != nil {
		n.quit(evict)
	}

	var raw net.Conn
	dctx := context.WithValue(ctx, rawConnSlot{}, &raw)
	sc, err := n.client.DialToSMTPClientWithContext(dctx)
	if err != nil {
		if raw != nil {
			_ = raw.Close()
		}
		n.mu.Lock()
		n.open--
		n.mu.Unlock()
		<-n.sem
		return nil, false, &dialError{err}
	}
	n.dials.Add(1)
	c := &conn{c: sc, raw: raw}
	n.mu.Lock()
	if n.closed {
		n.open--
		n.mu.Unlock()
		_ = raw.Close()
		<-n.sem
		return nil, false, ErrClosed
	}
	n.inUse[c] = struct{}{}
	n.mu.Unlock()
	return c, false, nil
}

// release returns c to the pool when healthy, or closes it.
func (n *Notifier) release(c *conn, healthy bool) {
	n.mu.Lock()
	delete(n.inUse, c)
	keep := healthy && !n.closed
	if keep {
		c.lastUsed = n.cfg.Now()
		n.idle = append(n.idle, c)
	} else {
		n.open--
	}
	n.mu.Unlock()
	if !keep {
		if healthy {
			n.quit(c)
		} else {
			_ = c.raw.Close()
		}
	}
	<-n.sem
}

// quit ends a session politely, bounded by Timeout.
func (n *Notifier) quit(c *conn) {
	_ = c.raw.SetDeadline(time.Now().Add(min(n.cfg.Timeout, 2*time.Second)))
	_ = c.c.Quit()
	_ = c.raw.Close()
}

// reaper closes connections idle longer than IdleTimeout.
func (n *Notifier) reaper() {
	defer close(n.done)
	t := time.NewTicker(max(n.cfg.IdleTimeout/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.closeIdle(n.cfg.Now().Add(-n.cfg.IdleTimeout))
		}
	}
}

// closeIdle closes pooled connections last used before cutoff.
func (n *Notifier) closeIdle(cutoff time.Time) int {
	n.mu.Lock()
	var old []*conn
	keep := n.idle[:0]
	for _, c := range n.idle {
		if c.lastUsed.Before(cutoff) {
			old = append(old, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(n.idle[len(keep):])
	n.idle = keep
	n.open -= len(old)
	n.mu.Unlock()
	for _, c := range old {
		n.quit(c)
	}
	return len(old)
}

// Shutdown stops accepting sends, waits for sends in progress (until ctx ends, when their
// connections are closed under them) and closes the pool. It is safe to call twice.
func (n *Notifier) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	idle := n.idle
	n.idle = nil
	n.open -= len(idle)
	n.mu.Unlock()
	close(n.stop)
	<-n.done
	for _, c := range idle {
		n.quit(c)
	}
	// Wait for in-flight sends by taking every token.
	for range cap(n.sem) {
		select {
		case n.sem <- struct{}{}:
		case <-ctx.Done():
			n.mu.Lock()
			for c := range n.inUse {
				_ = c.raw.Close()
			}
			n.mu.Unlock()
			return ctx.Err()
		}
	}
	return nil
}

// Close is Shutdown with a 5s limit.
func (n *Notifier) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.Shutdown(ctx)
}

// classify turns a go-mail or network error into a *SendError.
func classify(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	out := &SendError{Op: "send", Err: err}
	var de *dialError
	if errors.As(err, &de) {
		out.Op = "dial"
	}
	var gse *gomail.SendError
	var tpe *textproto.Error
	switch {
	case errors.As(err, &gse):
		out.Code = gse.ErrorCode()
		out.EnhancedCode = gse.EnhancedStatusCode()
		switch gse.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts:
			out.Permanent = true // the message has an unusable address
			return out
		}
	case errors.As(err, &tpe):
		out.Code = tpe.Code
	}
	// A 5xx answer to MAIL, RCPT or DATA is about this message or recipient. Failures to
	// open a session (refused connection, TLS, AUTH) are about our configuration or the
	// server, never the recipient: they stay transient so the job retries later.
	out.Permanent = out.Op == "send" && out.Code >= 500 && out.Code < 600
	return out
}
