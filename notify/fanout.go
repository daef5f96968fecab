package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/renewkit/renewkit/billing"
)

// Channel is one named destination of a FanOut.
type Channel struct {
	// Name identifies the channel in errors and logs ("email", "whatsapp").
	Name     string
	Notifier billing.Notifier
}

// ChannelError reports that one channel of a FanOut failed.
type ChannelError struct {
	Channel string
	Err     error
}

func (e *ChannelError) Error() string { return "notify: channel " + e.Channel + ": " + e.Err.Error() }

// Unwrap returns the channel's error.
func (e *ChannelError) Unwrap() error { return e.Err }

// FanOut sends every notification to several channels concurrently. It succeeds only when
// every channel succeeds. Otherwise it returns the failures joined with errors.Join, one
// *ChannelError per failed channel; the error wraps billing.ErrUndeliverable only when
// every failure is permanent, so a job retries while any channel might still succeed.
//
// A retry resends to every channel, including those that succeeded: channels receive
// Notification.Key so they (or their receivers) can drop duplicates.
type FanOut struct {
	channels []Channel
	log      *slog.Logger
}

var _ billing.Notifier = (*FanOut)(nil)

// FanOutConfig configures a FanOut.
type FanOutConfig struct {
	// Channels receive every notification. At least one; names must be unique and
	// non-empty, notifiers non-nil.
	Channels []Channel
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem of c, joined.
func (c FanOutConfig) Validate() error {
	var errs []error
	if len(c.Channels) == 0 {
		errs = append(errs, fmt.Errorf("%w: no channels: pass at least one notify.Channel", ErrInvalidConfig))
	}
	seen := make(map[string]bool)
	for i, ch := range c.Channels {
		switch {
		case ch.Name == "":
			errs = append(errs, fmt.Errorf("%w: channel %d has no name", ErrInvalidConfig, i))
		case seen[ch.Name]:
			errs = append(errs, fmt.Errorf("%w: channel name %q used twice", ErrInvalidConfig, ch.Name))
		}
		seen[ch.Name] = true
		if ch.Notifier == nil {
			errs = append(errs, fmt.Errorf("%w: channel %q has a nil Notifier", ErrInvalidConfig, ch.Name))
		}
	}
	return errors.Join(errs...)
}

// NewFanOutNotifier validates cfg and returns a FanOut over its channels.
func NewFanOutNotifier(cfg FanOutConfig) (*FanOut, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &FanOut{channels: append([]Channel(nil), cfg.Channels...), log: cfg.Logger}, nil
}

// NewFanOut returns a FanOut over channels; logger may be nil (slog.Default()).
//
// Deprecated: use NewFanOutNotifier(FanOutConfig{Channels: channels, Logger: logger}).
func NewFanOut(logger *slog.Logger, channels ...Channel) (*FanOut, error) {
	return NewFanOutNotifier(FanOutConfig{Channels: channels, Logger: logger})
}

// Notify sends n to every channel concurrently and waits for all of them.
func (f *FanOut) Notify(ctx context.Context, n billing.Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	errs := make([]error, len(f.channels))
	var wg sync.WaitGroup
	for i, c := range f.channels {
		wg.Go(func() {
			if err := c.Notifier.Notify(ctx, n); err != nil {
				errs[i] = err
				f.log.WarnContext(ctx, "notify: channel failed", "channel", c.Name, "kind", n.Kind,
					"key", n.Key, "permanent", errors.Is(err, billing.ErrUndeliverable), "error", err)
			}
		})
	}
	wg.Wait()

	var failed []error
	allPermanent := true
	for i, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, billing.ErrUndeliverable) {
			allPermanent = false
		}
		failed = append(failed, &ChannelError{Channel: f.channels[i].Name, Err: err})
	}
	if len(failed) == 0 {
		return nil
	}
	if !allPermanent {
		// Some channel may succeed on a retry: keep the messages but hide
		// ErrUndeliverable so the caller does not give up on the notification.
		for i, err := range failed {
			ce := err.(*ChannelError)
			if errors.Is(ce.Err, billing.ErrUndeliverable) {
				failed[i] = &ChannelError{Channel: ce.Channel, Err: errors.New(ce.Err.Error())}
			}
		}
	}
	return errors.Join(failed...)
}
