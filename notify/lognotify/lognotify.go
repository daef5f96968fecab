package lognotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/internal/mailmsg"
)

// Notifier logs every notification and remembers it. It is safe for concurrent use.
type Notifier struct {
	log      *slog.Logger
	renderer *notify.Renderer
	dir      string
	from     string
	now      func() time.Time
	fail     func(billing.Notification) error

	mu   sync.Mutex
	sent []billing.Notification
}

var _ billing.Notifier = (*Notifier)(nil)

// Option configures a Notifier.
type Option func(*Notifier) error

// WithRenderer renders notifications with r, for the logged subject and the .eml files.
// Default: a renderer with FrontendURL "http://localhost:8080" and default settings.
func WithRenderer(r *notify.Renderer) Option {
	return func(n *Notifier) error {
		if r == nil {
			return fmt.Errorf("%w: WithRenderer(nil): pass a *notify.Renderer from notify.NewRenderer", ErrInvalidOption)
		}
		n.renderer = r
		return nil
	}
}

// WithEMLDir also writes each notification as a full MIME message (multipart/alternative,
// as smtpnotify would send it) to dir/<time>_<kind>_<key>.eml, creating dir if needed, so
// a developer can open it in a mail client.
func WithEMLDir(dir string) Option {
	return func(n *Notifier) error {
		if dir == "" {
			return fmt.Errorf("%w: WithEMLDir(\"\"): pass a directory", ErrInvalidOption)
		}
		n.dir = dir
		return nil
	}
}

// WithFrom sets the From address written into .eml files. Default "renewkit <noreply@localhost>".
func WithFrom(from string) Option {
	return func(n *Notifier) error {
		if from == "" {
			return fmt.Errorf("%w: WithFrom(\"\")", ErrInvalidOption)
		}
		n.from = from
		return nil
	}
}

// WithClock sets the clock used for Date headers and file names. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(n *Notifier) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		n.now = now
		return nil
	}
}

// WithFailure makes Notify return fail(n) when it is not nil, without logging or recording
// the notification: a test double for delivery failures (wrap billing.ErrUndeliverable for
// permanent ones).
func WithFailure(fail func(billing.Notification) error) Option {
	return func(n *Notifier) error {
		if fail == nil {
			return fmt.Errorf("%w: WithFailure(nil)", ErrInvalidOption)
		}
		n.fail = fail
		return nil
	}
}

// New returns a Notifier logging to logger (nil: slog.Default()).
func New(logger *slog.Logger, opts ...Option) (*Notifier, error) {
	if logger == nil {
		logger = slog.Default()
	}
	n := &Notifier{log: logger, from: "renewkit <noreply@localhost>", now: time.Now}
	var errs []error
	for _, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("%w: nil Option", ErrInvalidOption))
			continue
		}
		if err := o(n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if n.renderer == nil {
		r, err := notify.NewRenderer(notify.Config{FrontendURL: "http://localhost:8080", Logger: logger})
		if err != nil {
			return nil, err
		}
		n.renderer = r
	}
	if n.dir != "" {
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, fmt.Errorf("lognotify: creating .eml directory: %w", err)
		}
	}
	return n, nil
}

// Notify renders n, logs kind, key, recipient address and subject (never the body), writes
// the .eml file when configured, and records n in Sent.
func (l *Notifier) Notify(ctx context.Context, n billing.Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.fail != nil {
		if err := l.fail(n); err != nil {
			return err
		}
	}
	m, err := l.renderer.RenderNotification(n)
	if err != nil {
		return err
	}
	attrs := []any{"kind", n.Kind, "key", n.Key, "to", n.To.Email, "locale", m.Locale, "subject", m.Subject}
	if l.dir != "" {
		path, err := l.writeEML(n, m)
		if err != nil {
			return err
		}
		attrs = append(attrs, "eml", path)
	}
	l.log.InfoContext(ctx, "notification (log notifier: not sent)", attrs...)
	l.mu.Lock()
	l.sent = append(l.sent, n)
	l.mu.Unlock()
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (l *Notifier) writeEML(n billing.Notification, m notify.Message) (string, error) {
	now := l.now()
	msg, err := mailmsg.Build(n, m, l.from, now)
	if err != nil {
		return "", fmt.Errorf("lognotify: building message: %w (%w)", err, billing.ErrUndeliverable)
	}
	key := unsafeName.ReplaceAllString(n.Key, "_")
	if len(key) > 80 {
		key = key[:80]
	}
	name := fmt.Sprintf("%s_%s_%s.eml", now.UTC().Format("20060102T150405.000000000Z"), n.Kind, key)
	path := filepath.Join(l.dir, name)
	if err := msg.WriteToFile(path); err != nil {
		return "", fmt.Errorf("lognotify: writing %s: %w", path, err)
	}
	return path, nil
}

// Sent returns a copy of the notifications delivered so far, in order.
func (l *Notifier) Sent() []billing.Notification {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]billing.Notification(nil), l.sent...)
}

// Reset forgets the recorded notifications.
func (l *Notifier) Reset() {
	l.mu.Lock()
	l.sent = nil
	l.mu.Unlock()
}
