package smtpnotify

import (
	"context"
	"fmt"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/internal/mailmsg"
)

const benchBatch = 1000

// benchNotes returns benchBatch notifications cycling through every kind and locale.
func benchNotes() []billing.Notification {
	notes := make([]billing.Notification, benchBatch)
	for i := range notes {
		kind := billing.AllNotificationKinds()[i%len(billing.AllNotificationKinds())]
		n := notify.SampleNotification(kind, notify.Locales()[i%2])
		n.Key = fmt.Sprintf("bench:%d", i)
		notes[i] = n
	}
	return notes
}

// perMessageSender is the naive sender the pool is measured against: the same rendering
// and message, but go-mail's DialAndSend, one connection (connect, EHLO, QUIT) per message.
type perMessageSender struct {
	client   *gomail.Client
	renderer *notify.Renderer
	from     string
}

func (p *perMessageSender) Notify(ctx context.Context, n billing.Notification) error {
	m, err := p.renderer.RenderNotification(n)
	if err != nil {
		return err
	}
	msg, err := mailmsg.Build(n, m, p.from, time.Now())
	if err != nil {
		return err
	}
	return p.client.DialAndSendWithContext(ctx, msg)
}

func runBatch(b *testing.B, s *testServer, send billing.Notifier, notes []billing.Notification) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	for b.Loop() {
		s.Reset()
		for _, n := range notes {
			if err := send.Notify(ctx, n); err != nil {
				b.Fatal(err)
			}
		}
	}
	if got := len(s.Messages()); got != benchBatch {
		b.Fatalf("server received %d messages, want %d", got, benchBatch)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N*benchBatch)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op") // one op is a whole batch; msgs/s is the figure that matters
}

// BenchmarkSMTP sends batches of 1,000 messages to one local go-smtp server through the
// pooled smtpnotify.Notifier and through a connection-per-message sender. Run with
//
//	go test -run '^$' -bench BenchmarkSMTP -benchtime 1x -count 5 ./notify/smtpnotify/
func BenchmarkSMTP(b *testing.B) {
	s := startServer(b)
	notes := benchNotes()
	renderer := newRenderer(b)

	b.Run("Pooled", func(b *testing.B) {
		cfg := testConfig(b, s)
		cfg.Renderer = renderer
		n := newNotifier(b, cfg)
		runBatch(b, s, n, notes)
		b.ReportMetric(float64(n.Stats().Dials), "dials")
	})
	b.Run("PerMessage", func(b *testing.B) {
		c, err := gomail.NewClient(s.Host, gomail.WithPort(s.Port), gomail.WithTLSPolicy(gomail.NoTLS),
			gomail.WithHELO("client.test"), gomail.WithTimeout(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		runBatch(b, s, &perMessageSender{client: c, renderer: renderer, from: "Acme <noreply@acme.example>"}, notes)
	})
}
