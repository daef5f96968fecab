package lognotify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/notify/notifytest"
)

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func deliveries(n *lognotify.Notifier) []notifytest.Delivery {
	var out []notifytest.Delivery
	for _, s := range n.Sent() {
		out = append(out, notifytest.Delivery{Kind: s.Kind, Key: s.Key, To: s.To.Email})
	}
	return out
}

func TestConformance(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		n, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		return notifytest.Harness{Notifier: n, Delivered: func() []notifytest.Delivery { return deliveries(n) }}
	})
}

func TestConformanceWithEMLFiles(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		n, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), EMLDir: t.TempDir()})
		require.NoError(t, err)
		return notifytest.Harness{Notifier: n, Delivered: func() []notifytest.Delivery { return deliveries(n) }}
	})
}

func TestLogsMetadataNotBody(t *testing.T) {
	var buf syncBuffer
	n, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	require.NoError(t, err)
	note := notify.SampleNotification(billing.NotificationKindExpiring, "pt_BR")
	require.NoError(t, n.Notify(context.Background(), note))
	out := buf.String()
	assert.Contains(t, out, `"kind":"expiring"`)
	assert.Contains(t, out, `"key":"`+note.Key+`"`)
	assert.Contains(t, out, `"to":"joao.silva@example.com"`)
	assert.Contains(t, out, `"subject":"Sua assinatura expira em 3 dias"`)
	assert.NotContains(t, out, "Renove agora", "never the body")
	assert.NotContains(t, out, "<table")
	assert.Equal(t, []billing.Notification{note}, n.Sent())
	n.Reset()
	assert.Empty(t, n.Sent())
}

func TestWritesEMLFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	now := time.Date(2026, 3, 18, 9, 0, 0, 0, time.UTC)
	r, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com"})
	require.NoError(t, err)
	n, err := lognotify.NewNotifier(lognotify.Config{EMLDir: dir, Renderer: r,
		From: "Acme <noreply@acme.example>", Clock: testkit.NewClock(now)})
	require.NoError(t, err)
	note := notify.SampleNotification(billing.NotificationKindPaymentFailed, "pt-BR")
	require.NoError(t, n.Notify(context.Background(), note))

	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	assert.Equal(t, "Não conseguimos processar seu pagamento", subj)
	assert.Equal(t, note.Key, m.Header.Get("X-Renewkit-Key"))
	assert.NotEmpty(t, m.Header.Get("Message-ID"))
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, ct)
		b, _ := io.ReadAll(p)
		assert.Contains(t, string(b), "https://app.example.com/billing/payment-method?subscription=sub_8f3a2c")
	}
	assert.Equal(t, []string{"text/plain", "text/html"}, types)
	assert.Contains(t, filepath.Base(files[0]), "20260318T090000", "the file is named by Config.Clock's time")
	assert.Equal(t, `"Acme" <noreply@acme.example>`, m.Header.Get("From"))
}

// TestDeprecatedNewAppliesOptions proves the one-release New(logger, opts...) wrapper still
// builds the same notifier as NewNotifier with the matching Config fields.
func TestDeprecatedNewAppliesOptions(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 18, 9, 0, 0, 0, time.UTC)
	n, err := lognotify.New(nil, lognotify.WithEMLDir(dir), lognotify.WithFrom("Acme <noreply@acme.example>"),
		lognotify.WithClock(func() time.Time { return now }))
	require.NoError(t, err)
	require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindRenewed, "en")))
	files, err := filepath.Glob(filepath.Join(dir, "20260318T090000*.eml"))
	require.NoError(t, err)
	require.Len(t, files, 1, "WithEMLDir and WithClock reach the notifier")
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	assert.Contains(t, string(raw), "From: \"Acme\" <noreply@acme.example>")
}

func TestFailureOptionAndValidation(t *testing.T) {
	boom := errors.New("boom")
	n, err := lognotify.NewNotifier(lognotify.Config{Failure: func(n billing.Notification) error {
		if n.Kind == billing.NotificationKindWelcome {
			return boom
		}
		return nil
	}})
	require.NoError(t, err)
	assert.ErrorIs(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "en")), boom)
	assert.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindRenewed, "en")))
	assert.Len(t, n.Sent(), 1)

	_, err = lognotify.New(nil, lognotify.WithEMLDir(""), lognotify.WithRenderer(nil), lognotify.WithClock(nil), nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, lognotify.ErrInvalidOption)
	for _, want := range []string{"WithEMLDir", "WithRenderer", "WithClock", "nil Option"} {
		assert.Contains(t, err.Error(), want)
	}
}
