package lognotify_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/lognotify"
)

// ExampleNewNotifier also writes each notification as a .eml file a developer can open, and lists
// what was sent, as a host's test would.
func ExampleNewNotifier() {
	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	n, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.DiscardHandler), EMLDir: dir})
	if err != nil {
		panic(err)
	}
	// billing.NewService(memstore.New(), n, cfg) would send through it; here one sample.
	if err := n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindExpiring, "en")); err != nil {
		panic(err)
	}
	for _, sent := range n.Sent() {
		fmt.Println(sent.Kind, sent.To.Email)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	fmt.Println(len(files), "eml file")
	// Output:
	// expiring jane.doe@example.com
	// 1 eml file
}
