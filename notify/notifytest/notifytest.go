package notifytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
)

// Delivery is one notification as observed at the far end.
type Delivery struct {
	Kind billing.NotificationKind
	Key  string
	To   string // recipient address
}

// Harness is one notifier under test.
type Harness struct {
	// Notifier is the implementation under test. Required.
	Notifier billing.Notifier
	// Delivered returns what has reached the far end so far, in any order. It is called
	// after Notify returned. Required.
	Delivered func() []Delivery
}

// Run runs the suite. newHarness is called once per subtest and may register cleanups
// with t.Cleanup.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	mk := func(t *testing.T) Harness {
		t.Helper()
		h := newHarness(t)
		if h.Notifier == nil || h.Delivered == nil {
			t.Fatal("notifytest: Harness needs Notifier and Delivered")
		}
		return h
	}

	t.Run("EveryKindEveryLocale", func(t *testing.T) {
		h := mk(t)
		want := map[string]Delivery{}
		for _, locale := range notify.Locales() {
			for _, kind := range billing.AllNotificationKinds() {
				n := notify.SampleNotification(kind, locale)
				n.Key = fmt.Sprintf("conformance:%s:%s", kind, locale)
				if err := h.Notifier.Notify(context.Background(), n); err != nil {
					t.Fatalf("Notify(%s, %s): %v", kind, locale, err)
				}
				want[n.Key] = Delivery{Kind: kind, Key: n.Key, To: n.To.Email}
			}
		}
		got := index(t, h.Delivered())
		for key, w := range want {
			g, ok := got[key]
			if !ok {
				t.Errorf("key %q was not delivered", key)
				continue
			}
			if g != w {
				t.Errorf("key %q delivered as %+v, want %+v", key, g, w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("delivered %d notifications, want %d", len(got), len(want))
		}
	})

	t.Run("KeyPreserved", func(t *testing.T) {
		h := mk(t)
		keys := []string{
			"expiring:sub_64f1c0a2:2026-03-18T17:30:00Z:3",
			"payment_successful:pay_01HZX8M4Q2/2026",
			"k",
		}
		for _, key := range keys {
			n := notify.SampleNotification(billing.NotificationKindRenewed, notify.LocaleEn)
			n.Key = key
			if err := h.Notifier.Notify(context.Background(), n); err != nil {
				t.Fatalf("Notify(key %q): %v", key, err)
			}
		}
		got := index(t, h.Delivered())
		for _, key := range keys {
			if _, ok := got[key]; !ok {
				t.Errorf("key %q not delivered unchanged; got keys %v", key, keysOf(got))
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		h := mk(t)
		const workers, each = 8, 6
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					kind := billing.AllNotificationKinds()[(w+i)%len(billing.AllNotificationKinds())]
					locale := notify.Locales()[(w+i)%2]
					n := notify.SampleNotification(kind, locale)
					n.Key = fmt.Sprintf("concurrent:%d:%d", w, i)
					if err := h.Notifier.Notify(context.Background(), n); err != nil {
						errs <- fmt.Errorf("%s: %w", n.Key, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := index(t, h.Delivered()); len(got) != workers*each {
			t.Errorf("delivered %d distinct keys, want %d", len(got), workers*each)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		h := mk(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n := notify.SampleNotification(billing.NotificationKindExpiring, notify.LocalePtBR)
		n.Key = "cancelled:1"
		err := h.Notifier.Notify(ctx, n)
		if err == nil {
			t.Fatal("Notify with a cancelled context returned nil")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v does not wrap context.Canceled", err)
		}
		if errors.Is(err, billing.ErrUndeliverable) {
			t.Errorf("a cancelled send is not permanent, but %v wraps billing.ErrUndeliverable", err)
		}
		if _, ok := index(t, h.Delivered())[n.Key]; ok {
			t.Error("a notification was delivered despite the cancelled context")
		}
	})
}

// index maps deliveries by key and fails on a key delivered twice.
func index(t *testing.T, ds []Delivery) map[string]Delivery {
	t.Helper()
	m := make(map[string]Delivery, len(ds))
	for _, d := range ds {
		if _, dup := m[d.Key]; dup {
			t.Errorf("key %q delivered more than once", d.Key)
		}
		m[d.Key] = d
	}
	return m
}

func keysOf(m map[string]Delivery) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
