package smtpnotify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/internal/mailmsg"
	"github.com/renewkit/renewkit/notify/notifytest"
)

const testFrontend = "https://app.example.com"

func newRenderer(t testing.TB) *notify.Renderer {
	t.Helper()
	r, err := notify.NewRenderer(notify.Config{FrontendURL: testFrontend, ProductName: "Acme",
		SupportEmail: "help@acme.example"})
	require.NoError(t, err)
	return r
}

func testConfig(t testing.TB, s *testServer) Config {
	return Config{
		Host:        s.Host,
		Port:        s.Port,
		From:        "Acme <noreply@acme.example>",
		TLSPolicy:   TLSNone,
		Timeout:     5 * time.Second,
		Backoff:     time.Millisecond,
		MaxBackoff:  5 * time.Millisecond,
		Renderer:    newRenderer(t),
		HELO:        "client.test",
		IdleTimeout: time.Minute,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

func newNotifier(t testing.TB, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// parsed is a received message decoded with net/mail and mime/multipart.
type parsed struct {
	Header      mail.Header
	Subject     string
	ContentType string
	Text, HTML  string
	TextCT      string
	HTMLCT      string
}

func parseMessage(t *testing.T, raw []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	var p parsed
	p.Header = m.Header
	p.Subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	p.ContentType = mt
	require.Equal(t, "multipart/alternative", mt)
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		var body io.Reader = part
		// multipart.Reader decodes quoted-printable itself and drops the header; handle
		// both cases.
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(part)
		}
		b, err := io.ReadAll(body)
		require.NoError(t, err)
		ct := part.Header.Get("Content-Type")
		pmt, _, err := mime.ParseMediaType(ct)
		require.NoError(t, err)
		switch pmt {
		case "text/plain":
			p.Text, p.TextCT = string(b), ct
		case "text/html":
			p.HTML, p.HTMLCT = string(b), ct
		default:
			t.Fatalf("unexpected part %s", ct)
		}
	}
	return p
}

// expectedLink is the call-to-action each kind must carry.
func expectedLink(kind billing.NotificationKind, d billing.NotificationData) string {
	switch kind {
	case billing.NotificationKindExpiring, billing.NotificationKindExpired, billing.NotificationKindPaymentReversed:
		return testFrontend + "/billing/renew?subscription=" + d.SubscriptionID
	case billing.NotificationKindPaymentFailed:
		return testFrontend + "/billing/payment-method?subscription=" + d.SubscriptionID
	case billing.NotificationKindRenewalUpcoming, billing.NotificationKindRenewed:
		return testFrontend + "/account/subscription"
	case billing.NotificationKindPaymentSuccessful, billing.NotificationKindWelcome:
		return testFrontend + "/dashboard"
	case billing.NotificationKindOperatorAlert:
		return testFrontend + "/admin/jobs/" + d.JobID + "?run=" + d.RunID
	}
	return ""
}

func showsAmount(kind billing.NotificationKind) bool {
	switch kind {
	case billing.NotificationKindExpiring, billing.NotificationKindRenewalUpcoming, billing.NotificationKindRenewed,
		billing.NotificationKindPaymentSuccessful, billing.NotificationKindPaymentFailed, billing.NotificationKindPaymentReversed:
		return true
	}
	return false
}

func TestDeliversEveryKindInBothLocales(t *testing.T) {
	s := startServer(t)
	cfg := testConfig(t, s)
	n := newNotifier(t, cfg)
	wantSubjects := map[string]string{
		"pt-BR/expiring":           "Sua assinatura expira em 3 dias",
		"en/expiring":              "Your subscription expires in 3 days",
		"pt-BR/payment_failed":     "Não conseguimos processar seu pagamento",
		"pt-BR/renewal_upcoming":   "Sua assinatura será renovada em 18/03/2026",
		"en/renewal_upcoming":      "Your subscription renews on March 18, 2026",
		"pt-BR/welcome":            "Boas-vindas ao Acme!",
		"pt-BR/payment_successful": "Pagamento confirmado: R$ 49,90",
		"en/payment_successful":    "Payment received: $49.90",
		"pt-BR/payment_reversed":   "Seu pagamento foi estornado",
		"en/payment_reversed":      "Your payment was refunded",
	}
	for _, locale := range notify.Locales() {
		for _, kind := range billing.AllNotificationKinds() {
			t.Run(locale+"/"+string(kind), func(t *testing.T) {
				s.Reset()
				note := notify.SampleNotification(kind, locale)
				note.Key = "test:" + string(kind) + ":" + locale
				require.NoError(t, n.Notify(context.Background(), note))
				msgs := s.Messages()
				require.Len(t, msgs, 1)
				got := msgs[0]
				assert.Equal(t, "noreply@acme.example", got.From)
				assert.Equal(t, []string{note.To.Email}, got.To)

				p := parseMessage(t, got.Data)
				want, err := cfg.Renderer.RenderNotification(note)
				require.NoError(t, err)
				assert.Equal(t, want.Subject, p.Subject)
				if ws, ok := wantSubjects[locale+"/"+string(kind)]; ok {
					assert.Equal(t, ws, p.Subject)
				}
				assert.Equal(t, note.Key, p.Header.Get("X-Renewkit-Key"))
				assert.Equal(t, string(kind), p.Header.Get("X-Renewkit-Kind"))
				assert.Equal(t, "<"+mailmsg.MessageID(note.Key, cfg.From)+">", p.Header.Get("Message-ID"))
				assert.NotEmpty(t, p.Header.Get("Date"))
				assert.Equal(t, "1.0", p.Header.Get("MIME-Version"))
				from, err := mail.ParseAddress(p.Header.Get("From"))
				require.NoError(t, err)
				assert.Equal(t, "Acme", from.Name)
				to, err := mail.ParseAddress(p.Header.Get("To"))
				require.NoError(t, err)
				assert.Equal(t, note.To.Email, to.Address)
				assert.Equal(t, note.To.Name, to.Name)

				assert.Contains(t, strings.ToLower(p.TextCT), "charset=utf-8")
				assert.Contains(t, strings.ToLower(p.HTMLCT), "charset=utf-8")
				assert.Equal(t, strings.ReplaceAll(want.Text, "\n", "\r\n"), p.Text)
				assert.Contains(t, p.HTML, "<!DOCTYPE html>")

				link := expectedLink(kind, note.Data)
				assert.Contains(t, p.Text, link)
				assert.Contains(t, p.HTML, `href="`+strings.ReplaceAll(link, "&", "&amp;")+`"`)
				if showsAmount(kind) {
					amount := map[string]string{"pt-BR": "R$ 49,90", "en": "$49.90"}[locale]
					assert.Contains(t, p.Text, amount)
					assert.Contains(t, p.HTML, amount)
				}
				for _, marker := range []string{"{{", "<no value>", "%!"} {
					assert.NotContains(t, p.HTML, marker)
					assert.NotContains(t, p.Text, marker)
				}
			})
		}
	}
}

func TestPoolReusesOneConnection(t *testing.T) {
	s := startServer(t)
	n := newNotifier(t, testConfig(t, s))
	for i := range 20 {
		note := notify.SampleNotification(billing.NotificationKindRenewed, "en")
		note.Key = "pool:" + string(rune('a'+i))
		require.NoError(t, n.Notify(context.Background(), note))
	}
	assert.Len(t, s.Messages(), 20)
	assert.EqualValues(t, 1, n.Stats().Dials)
	assert.EqualValues(t, 1, s.Sessions.Load())
	require.NoError(t, n.Shutdown(context.Background()))
	assert.Eventually(t, func() bool { return s.Logouts.Load() == 1 }, 5*time.Second, time.Millisecond,
		"Shutdown ends the pooled session")
}

func TestRetriesAfter421AndDeliversOnce(t *testing.T) {
	s := startServer(t)
	var calls int
	var mu sync.Mutex
	s.OnMail = func(string) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: "Service not available, try later"}
		}
		return nil
	}
	n := newNotifier(t, testConfig(t, s))
	note := notify.SampleNotification(billing.NotificationKindExpiring, notify.LocalePtBR)
	require.NoError(t, n.Notify(context.Background(), note))
	require.Len(t, s.Messages(), 1, "delivered exactly once")
	assert.EqualValues(t, 2, s.MailCalls.Load())
	assert.EqualValues(t, 1, n.Stats().Retries)
}

func Test550IsPermanentAndNotRetried(t *testing.T) {
	s := startServer(t)
	s.OnRcpt = func(string) error {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	}
	n := newNotifier(t, testConfig(t, s))
	err := n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindExpiring, notify.LocalePtBR))
	require.Error(t, err)
	assert.ErrorIs(t, err, billing.ErrUndeliverable)
	var se *SendError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 550, se.Code)
	assert.True(t, se.Permanent)
	assert.Equal(t, 1, se.Attempts)
	assert.Equal(t, "5.1.1", se.EnhancedCode)
	assert.EqualValues(t, 1, s.RcptCalls.Load(), "not retried")
	assert.Empty(t, s.Messages())
	assert.Zero(t, n.Stats().Retries)
}

func TestBadAddressIsPermanent(t *testing.T) {
	s := startServer(t)
	n := newNotifier(t, testConfig(t, s))
	note := notify.SampleNotification(billing.NotificationKindWelcome, "en")
	note.To.Email = "not an address"
	err := n.Notify(context.Background(), note)
	assert.ErrorIs(t, err, billing.ErrUndeliverable)
	var se *SendError
	require.ErrorAs(t, err, &se)
	assert.True(t, se.Permanent)
	assert.Zero(t, s.Sessions.Load(), "nothing was sent")
}

func TestConnectionDroppedMidDataIsRetriedAndDeliveredOnce(t *testing.T) {
	s := startServer(t)
	var dropped sync.Once
	s.OnData = func(c *gosmtp.Conn, r io.Reader) (bool, error) {
		handled := false
		dropped.Do(func() {
			handled = true
			_, _ = io.ReadFull(r, make([]byte, 200)) // part of the message arrives
			_ = c.Conn().Close()
		})
		return handled, errors.New("connection dropped")
	}
	n := newNotifier(t, testConfig(t, s))
	note := notify.SampleNotification(billing.NotificationKindPaymentSuccessful, notify.LocalePtBR)
	require.NoError(t, n.Notify(context.Background(), note))
	msgs := s.Messages()
	require.Len(t, msgs, 1, "delivered exactly once")
	assert.EqualValues(t, 2, s.DataCalls.Load())
	assert.EqualValues(t, 1, n.Stats().Retries)
	assert.EqualValues(t, 2, n.Stats().Dials)
	p := parseMessage(t, msgs[0].Data)
	assert.Equal(t, note.Key, p.Header.Get("X-Renewkit-Key"))
}

func TestDeadPooledConnectionIsRedialled(t *testing.T) {
	s := startServer(t)
	n := newNotifier(t, testConfig(t, s))
	require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindRenewed, "en")))
	// Kill the pooled connection from our side of the socket, as a server timeout would.
	n.mu.Lock()
	require.Len(t, n.idle, 1)
	_ = n.idle[0].raw.Close()
	n.mu.Unlock()
	note := notify.SampleNotification(billing.NotificationKindWelcome, "en")
	require.NoError(t, n.Notify(context.Background(), note))
	assert.Len(t, s.Messages(), 2)
	assert.EqualValues(t, 2, n.Stats().Dials)
	assert.Zero(t, n.Stats().Retries, "a dead pooled connection does not use the retry budget")
}

func TestServerDownFailsWithinTimeout(t *testing.T) {
	// A port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	cfg := Config{Host: "127.0.0.1", Port: port, From: "noreply@acme.example", TLSPolicy: TLSNone,
		Timeout: time.Second, MaxAttempts: 3, Backoff: time.Millisecond, Renderer: newRenderer(t)}
	n := newNotifier(t, cfg)
	start := time.Now()
	err = n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindExpired, "en"))
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.Less(t, elapsed, cfg.Timeout, "refused connections fail fast")
	assert.NotErrorIs(t, err, billing.ErrUndeliverable, "a down server is transient")
	var se *SendError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "dial", se.Op)
	assert.Equal(t, 3, se.Attempts)
}

func TestUnresponsiveServerFailsWithinTimeout(t *testing.T) {
	// Accepts TCP connections but never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	cfg := Config{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, From: "noreply@acme.example",
		TLSPolicy: TLSNone, Timeout: 300 * time.Millisecond, MaxAttempts: 1, Renderer: newRenderer(t)}
	n := newNotifier(t, cfg)
	start := time.Now()
	err = n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindExpired, "en"))
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.GreaterOrEqual(t, elapsed, 250*time.Millisecond)
	assert.Less(t, elapsed, 3*cfg.Timeout, "error within the timeout")
	assert.NotErrorIs(t, err, billing.ErrUndeliverable)
}

func TestContextCancelAbortsSendInProgress(t *testing.T) {
	s := startServer(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.OnData = func(_ *gosmtp.Conn, r io.Reader) (bool, error) {
		close(entered)
		<-release
		return true, errors.New("released")
	}
	n := newNotifier(t, testConfig(t, s))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Notify(ctx, notify.SampleNotification(billing.NotificationKindRenewed, "en")) }()
	<-entered
	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, billing.ErrUndeliverable)
	case <-time.After(5 * time.Second):
		t.Fatal("Notify did not return after cancel")
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	s := startServer(t)
	var mu sync.Mutex
	now := time.Date(2026, 3, 18, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := testConfig(t, s)
	cfg.Now = clock
	cfg.IdleTimeout = time.Hour // the reaper's ticker never fires during the test
	n := newNotifier(t, cfg)
	require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindRenewed, "en")))
	assert.Equal(t, 0, n.closeIdle(clock().Add(-cfg.IdleTimeout)), "fresh connection kept")

	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	assert.Equal(t, 1, n.closeIdle(clock().Add(-cfg.IdleTimeout)))
	assert.Equal(t, 0, n.Stats().Idle)
	assert.Eventually(t, func() bool { return s.Logouts.Load() == 1 }, 5*time.Second, time.Millisecond)

	require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "en")))
	assert.EqualValues(t, 2, n.Stats().Dials, "redialled after the idle close")
}

func TestAuthAndPasswordNeverLogged(t *testing.T) {
	const password = "s3cr3t-PASSWORD-value"
	s := startServer(t, withAuth("apikey", password))
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := testConfig(t, s)
	cfg.Username, cfg.Password, cfg.Logger = "apikey", password, logger
	n := newNotifier(t, cfg)
	require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "pt-BR")))
	assert.EqualValues(t, 1, s.authOK.Load())
	assert.Len(t, s.Messages(), 1)

	logger.Info("config", "smtp", cfg)
	logs.WriteString(cfg.String())
	assert.NotContains(t, logs.String(), password)
	assert.Contains(t, logs.String(), "[redacted]")

	// Wrong password: an error that is not the recipient's fault.
	bad := testConfig(t, s)
	bad.Username, bad.Password, bad.MaxAttempts = "apikey", "wrong", 1
	nb := newNotifier(t, bad)
	err := nb.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "pt-BR"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, billing.ErrUndeliverable)
	assert.NotContains(t, err.Error(), "wrong")
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.Validate()
	require.Error(t, err)
	for _, want := range []string{"missing Host", "missing From", "missing Renderer"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.ErrorIs(t, err, ErrInvalidConfig)
	err = Config{Host: "h", From: "bad", Password: "x", Renderer: newRenderer(t), TLSPolicy: 9}.Validate()
	for _, want := range []string{"From \"bad\"", "Password set without Username", "unknown TLSPolicy"} {
		assert.Contains(t, err.Error(), want)
	}
	p, err := ParseTLSPolicy("SSL")
	require.NoError(t, err)
	assert.Equal(t, TLSImplicit, p)
	_, err = ParseTLSPolicy("maybe")
	assert.ErrorIs(t, err, ErrInvalidConfig)
	c := Config{TLSPolicy: TLSImplicit}.withDefaults()
	assert.Equal(t, 465, c.Port)
	assert.Equal(t, 587, Config{}.withDefaults().Port)
}

func TestShutdownRejectsNewSends(t *testing.T) {
	s := startServer(t)
	n := newNotifier(t, testConfig(t, s))
	require.NoError(t, n.Shutdown(context.Background()))
	require.NoError(t, n.Shutdown(context.Background()), "twice is fine")
	err := n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "en"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.NotErrorIs(t, err, billing.ErrUndeliverable)
}

func TestConformance(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		s := startServer(t)
		cfg := testConfig(t, s)
		cfg.MaxConns = 4
		n := newNotifier(t, cfg)
		return notifytest.Harness{Notifier: n, Delivered: func() []notifytest.Delivery {
			var out []notifytest.Delivery
			for _, m := range s.Messages() {
				msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, notifytest.Delivery{
					Kind: billing.NotificationKind(msg.Header.Get("X-Renewkit-Kind")),
					Key:  msg.Header.Get("X-Renewkit-Key"),
					To:   strings.Join(m.To, ","),
				})
			}
			return out
		}}
	})
}
