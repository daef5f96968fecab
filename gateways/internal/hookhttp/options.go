package hookhttp

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/renewkit/renewkit/billing"
)

// Options are the optional dependencies every gateway takes through its WithLogger and
// WithClock. Each gateway declares `type Option func(*hookhttp.Options) error`.
type Options struct {
	Log   *slog.Logger
	Clock billing.Clock
	// Inline: process each delivery in the request (billing.Service.HandleWebhookEvent)
	// instead of accepting it into the inbox for the worker.
	Inline bool
}

// ProcessInline sets Options.Inline.
func ProcessInline() func(*Options) error {
	return func(o *Options) error {
		o.Inline = true
		return nil
	}
}

// WithLogger sets Options.Log; nil is an error.
func WithLogger(l *slog.Logger) func(*Options) error {
	return func(o *Options) error {
		if l == nil {
			return errors.New("WithLogger(nil): pass a logger, or leave the option out for the billing Service's logger")
		}
		o.Log = l
		return nil
	}
}

// WithClock sets Options.Clock; nil is an error.
func WithClock(c billing.Clock) func(*Options) error {
	return func(o *Options) error {
		if c == nil {
			return errors.New("WithClock(nil): pass a clock, or leave the option out for the billing Service's clock")
		}
		o.Clock = c
		return nil
	}
}

// ApplyOptions runs opts and joins every problem (a nil option is one), each wrapping
// invalid (the gateway's ErrInvalidConfig). Unset fields default to svc's clock and logger;
// with a nil svc (a renewal lookup) the logger defaults to slog.Default() and the clock
// stays nil.
func ApplyOptions[O ~func(*Options) error](svc *billing.Service, invalid error, opts []O) (Options, error) {
	var o Options
	var errs []error
	for _, opt := range opts {
		if opt == nil {
			errs = append(errs, fmt.Errorf("%w: nil Option", invalid))
			continue
		}
		if err := opt(&o); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", invalid, err))
		}
	}
	if svc != nil {
		if o.Clock == nil {
			o.Clock = svc.Clock()
		}
		if o.Log == nil {
			o.Log = svc.Config().Logger
		}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o, errors.Join(errs...)
}
