package notifytest_test

import (
	"log/slog"
	"testing"

	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/notify/notifytest"
)

// ExampleRun is the conformance test of the log notifier: the Harness names the notifier
// and reports what reached the far end. A notifier writes it as a Test function.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		notifytest.Run(t, func(t *testing.T) notifytest.Harness {
			n, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			return notifytest.Harness{Notifier: n, Delivered: func() []notifytest.Delivery {
				var out []notifytest.Delivery
				for _, s := range n.Sent() {
					out = append(out, notifytest.Delivery{Kind: s.Kind, Key: s.Key, To: s.To.Email})
				}
				return out
			}}
		})
	}
	_ = testConformance
}
