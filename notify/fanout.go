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

// NewFanOut returns a FanOut over channels, which must have unique non-empty names and
// non-nil notifiers. logger may be nil (slog.Default()).
func NewFanOut(logger *slog.Logger, channels ...Channel) (*FanOut, error) {
	if logger == nil {
		logger = slog.Default()
	}
	var errs []error
	if len(channels) == 0 {
		errs = append(errs, fmt.Errorf("%w: no channels: pass at least one notify.Channel", ErrInvalidConfig))
	}
	seen := make(map[string]bool)
	for i, c := range channels {
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("%w: channel %d has no name", ErrInvalidConfig, i))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("%w: channel name %q used twice", ErrInvalidConfig, c.Name))
		}
		seen[c.Name] = true
		if c.Notifier == nil {
			errs = append(errs, fmt.Errorf("%w: channel %q has a nil Notifier", ErrInvalidConfig, c.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &FanOut{channels: append([]Channel(nil), channels...), log: logger}, nil
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
