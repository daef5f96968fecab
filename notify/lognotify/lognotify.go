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
	clock    billing.Clock
	fail     func(billing.Notification) error

	mu   sync.Mutex
	sent []billing.Notification
}

var _ billing.Notifier = (*Notifier)(nil)

// Config configures a Notifier. The zero value logs to slog.Default() with the default
// renderer and writes no files.
type Config struct {
	// Logger receives one line per notification. Default slog.Default().
	Logger *slog.Logger
	// Renderer renders notifications, for the logged subject and the .eml files. Default: a
	// renderer with FrontendURL "http://localhost:8080" and default settings.
	Renderer *notify.Renderer
	// EMLDir, when set, also receives each notification as a full MIME message
	// (multipart/alternative, as smtpnotify would send it) in <EMLDir>/<time>_<kind>_<key>.eml;
	// the directory is created if needed, so a developer can open the file in a mail client.
	EMLDir string
	// From is the From address written into .eml files. Default "renewkit <noreply@localhost>".
	From string
	// Clock dates the .eml files (Date header and file name). Default: the wall clock.
	Clock billing.Clock
	// Failure, when set, makes Notify return Failure(n) when that is not nil, without
	// logging or recording the notification: a test double for delivery failures (wrap
	// billing.ErrUndeliverable for permanent ones).
	Failure func(billing.Notification) error
}

// NewNotifier returns a Notifier configured by cfg.
func NewNotifier(cfg Config) (*Notifier, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.From == "" {
		cfg.From = "renewkit <noreply@localhost>"
	}
	if cfg.Clock == nil {
		cfg.Clock = billing.SystemClock()
	}
	if cfg.Renderer == nil {
		r, err := notify.NewRenderer(notify.Config{FrontendURL: "http://localhost:8080", Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		cfg.Renderer = r
	}
	if cfg.EMLDir != "" {
		if err := os.MkdirAll(cfg.EMLDir, 0o755); err != nil {
			return nil, fmt.Errorf("lognotify: creating .eml directory: %w", err)
		}
	}
	return &Notifier{log: cfg.Logger, renderer: cfg.Renderer, dir: cfg.EMLDir, from: cfg.From,
		clock: cfg.Clock, fail: cfg.Failure}, nil
}

// Option configures a Notifier built by New.
//
// Deprecated: set the fields of Config and call NewNotifier.
type Option func(*Config) error

// WithRenderer sets Config.Renderer.
//
// Deprecated: set Config.Renderer.
func WithRenderer(r *notify.Renderer) Option {
	return func(c *Config) error {
		if r == nil {
			return fmt.Errorf("%w: WithRenderer(nil): pass a *notify.Renderer from notify.NewRenderer", ErrInvalidOption)
		}
		c.Renderer = r
		return nil
	}
}

// WithEMLDir sets Config.EMLDir.
//
// Deprecated: set Config.EMLDir.
func WithEMLDir(dir string) Option {
	return func(c *Config) error {
		if dir == "" {
			return fmt.Errorf("%w: WithEMLDir(\"\"): pass a directory", ErrInvalidOption)
		}
		c.EMLDir = dir
		return nil
	}
}

// WithFrom sets Config.From.
//
// Deprecated: set Config.From.
func WithFrom(from string) Option {
	return func(c *Config) error {
		if from == "" {
			return fmt.Errorf("%w: WithFrom(\"\")", ErrInvalidOption)
		}
		c.From = from
		return nil
	}
}

// WithClock sets the clock used for Date headers and file names.
//
// Deprecated: set Config.Clock.
func WithClock(now func() time.Time) Option {
	return func(c *Config) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		c.Clock = funcClock(now)
		return nil
	}
}

// WithFailure sets Config.Failure.
//
// Deprecated: set Config.Failure.
func WithFailure(fail func(billing.Notification) error) Option {
	return func(c *Config) error {
		if fail == nil {
			return fmt.Errorf("%w: WithFailure(nil)", ErrInvalidOption)
		}
		c.Failure = fail
		return nil
	}
}

// New returns a Notifier logging to logger (nil: slog.Default()) with opts applied.
//
// Deprecated: use NewNotifier(Config{Logger: logger, ...}).
func New(logger *slog.Logger, opts ...Option) (*Notifier, error) {
	cfg := Config{Logger: logger}
	var errs []error
	for _, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("%w: nil Option", ErrInvalidOption))
			continue
		}
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return NewNotifier(cfg)
}

type funcClock func() time.Time

func (f funcClock) Now() time.Time { return f() }

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
	now := l.clock.Now()
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
