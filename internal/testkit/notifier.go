package testkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/renewkit/renewkit/billing"
)

// ErrTransient is what Notifier returns for failures set up with FailNext: a temporary
// problem the jobs retry on a later run.
var ErrTransient = errors.New("testkit: transient notifier failure")

// Notifier is a billing.Notifier that records what it delivers. It can be told to fail the
// next N deliveries with ErrTransient, every delivery permanently with an error wrapping
// billing.ErrUndeliverable, or every delivery with an error of the test's choosing. It is
// safe for concurrent use.
type Notifier struct {
	mu        sync.Mutex
	sent      []billing.Notification
	failed    []billing.Notification
	attempts  int
	failNext  int
	permanent func(billing.Notification) bool
	failWith  error
}

// NewNotifier returns a notifier that delivers everything.
func NewNotifier() *Notifier { return &Notifier{} }

// Notify records n as sent, unless a failure is set up.
func (r *Notifier) Notify(ctx context.Context, n billing.Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.failWith != nil {
		r.failed = append(r.failed, n)
		return r.failWith
	}
	if r.permanent != nil && r.permanent(n) {
		r.failed = append(r.failed, n)
		return fmt.Errorf("testkit: %s to %s: %w", n.Kind, n.To.Email, billing.ErrUndeliverable)
	}
	if r.failNext > 0 {
		r.failNext--
		r.failed = append(r.failed, n)
		return fmt.Errorf("testkit: %s to %s: %w", n.Kind, n.To.Email, ErrTransient)
	}
	r.sent = append(r.sent, n)
	return nil
}

// FailNext makes the next k deliveries fail with ErrTransient.
func (r *Notifier) FailNext(k int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext = k
}

// FailPermanently makes every delivery for which match reports true (every delivery when
// match is nil) fail with an error wrapping billing.ErrUndeliverable, until Heal.
func (r *Notifier) FailPermanently(match func(billing.Notification) bool) {
	if match == nil {
		match = func(billing.Notification) bool { return true }
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.permanent = match
}

// FailWith makes every delivery fail with err itself, until Heal: for a test of how a
// caller classifies one particular error (an SMTP 421, a wrapped ErrUndeliverable).
func (r *Notifier) FailWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failWith = err
}

// Heal drops every failure set up with FailNext, FailPermanently or FailWith.
func (r *Notifier) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext, r.permanent, r.failWith = 0, nil, nil
}

// Sent returns the delivered notifications, oldest first.
func (r *Notifier) Sent() []billing.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// Failed returns the notifications whose delivery failed (transiently or permanently),
// oldest first.
func (r *Notifier) Failed() []billing.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.failed)
}

// Attempts is how many times Notify was called, failures included.
func (r *Notifier) Attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// Count returns how many notifications of kind were delivered (every kind when kind is "").
func (r *Notifier) Count(kind billing.NotificationKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.sent {
		if kind == "" || s.Kind == kind {
			n++
		}
	}
	return n
}

// For returns the delivered notifications about the subscription or payment id (matched
// against Data.SubscriptionID and Data.PaymentID), oldest first.
func (r *Notifier) For(id string) []billing.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []billing.Notification
	for _, s := range r.sent {
		if s.Data.SubscriptionID == id || s.Data.PaymentID == id {
			out = append(out, s)
		}
	}
	return out
}

// Reset forgets what was delivered, what failed and the attempt count; failures set up stay.
func (r *Notifier) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.failed, r.attempts = nil, nil, 0
}
