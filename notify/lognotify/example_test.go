package lognotify_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/lognotify"
)

// lognotify is the notifier for development and the test double for hosts: it logs each
// notification and remembers it.
func Example() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // stable output
			}
			return a
		},
	}))
	n, err := lognotify.NewNotifier(lognotify.Config{Logger: logger})
	if err != nil {
		panic(err)
	}
	note := notify.SampleNotification(billing.NotificationKindExpiring, "pt-BR")
	if err := n.Notify(context.Background(), note); err != nil {
		panic(err)
	}
	fmt.Println(len(n.Sent()), n.Sent()[0].Key)
	// Output:
	// level=INFO msg="notification (log notifier: not sent)" kind=expiring key=expiring:sample:pt-BR to=joao.silva@example.com locale=pt-BR subject="Sua assinatura expira em 3 dias"
	// 1 expiring:sample:pt-BR
}
