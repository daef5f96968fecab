package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/notifytest"
)

func TestPreviewHandlerUnderPrefix(t *testing.T) {
	r := newRenderer(t)
	mux := http.NewServeMux()
	mux.Handle("/admin/emails/", http.StripPrefix("/admin/emails", r.PreviewHandler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	get := func(path string) (int, string, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ct, body := get("/admin/emails/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, ct, "text/html")
	for _, locale := range notify.Locales() {
		for _, kind := range billing.AllNotificationKinds() {
			src := fmt.Sprintf(`src="%s/%s/html"`, locale, kind)
			assert.Contains(t, body, src, "relative iframe link")
			m, err := r.Render(kind, locale, notify.SampleData(kind, locale))
			require.NoError(t, err)
			// html/template escapes the text part; check a line without special characters.
			assert.Contains(t, body, strings.Split(m.Text, "\n")[0][:8])

			code, ct, html := get(fmt.Sprintf("/admin/emails/%s/%s/html", locale, kind))
			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, ct, "text/html")
			assert.Equal(t, m.HTML, html)
			code, ct, text := get(fmt.Sprintf("/admin/emails/%s/%s/text", locale, kind))
			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, ct, "text/plain")
			assert.Contains(t, text, m.Text)
		}
	}
	code, _, _ = get("/admin/emails/fr/expiring/html")
	assert.Equal(t, http.StatusNotFound, code)
	code, _, _ = get("/admin/emails/en/nope/html")
	assert.Equal(t, http.StatusNotFound, code)
}

// deliveries is what n delivered, as notifytest compares it.
func deliveries(n *testkit.Notifier) []notifytest.Delivery {
	var out []notifytest.Delivery
	for _, s := range n.Sent() {
		out = append(out, notifytest.Delivery{Kind: s.Kind, Key: s.Key, To: s.To.Email})
	}
	return out
}

// failing is a notifier whose every delivery fails with err.
func failing(err error) *testkit.Notifier {
	n := testkit.NewNotifier()
	n.FailWith(err)
	return n
}

func TestFanOutConformance(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		a, b := testkit.NewNotifier(), testkit.NewNotifier()
		f, err := notify.NewFanOutNotifier(notify.FanOutConfig{Channels: []notify.Channel{{Name: "email", Notifier: a}, {Name: "sms", Notifier: b}}})
		require.NoError(t, err)
		return notifytest.Harness{Notifier: f, Delivered: func() []notifytest.Delivery {
			// Both channels must have everything; report one after checking the other.
			assert.ElementsMatch(t, deliveries(a), deliveries(b))
			return deliveries(a)
		}}
	})
}

func TestFanOutErrors(t *testing.T) {
	permanent := fmt.Errorf("mailbox gone: %w", billing.ErrUndeliverable)
	transient := errors.New("connection reset")
	n := notify.SampleNotification(billing.NotificationKindExpired, "en")

	ok := testkit.NewNotifier()
	f, err := notify.NewFanOutNotifier(notify.FanOutConfig{Channels: []notify.Channel{{Name: "email", Notifier: ok},
		{Name: "whatsapp", Notifier: failing(permanent)}}})
	require.NoError(t, err)
	err = f.Notify(context.Background(), n)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "channel whatsapp")
	assert.NotContains(t, err.Error(), "channel email")
	assert.ErrorIs(t, err, billing.ErrUndeliverable, "every failure is permanent")
	var ce *notify.ChannelError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "whatsapp", ce.Channel)
	assert.Len(t, ok.Sent(), 1, "the healthy channel still delivered")

	f, err = notify.NewFanOutNotifier(notify.FanOutConfig{Channels: []notify.Channel{{Name: "email", Notifier: failing(transient)},
		{Name: "whatsapp", Notifier: failing(permanent)}}})
	require.NoError(t, err)
	err = f.Notify(context.Background(), n)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "channel email")
	assert.Contains(t, err.Error(), "channel whatsapp")
	assert.ErrorIs(t, err, transient)
	assert.NotErrorIs(t, err, billing.ErrUndeliverable, "one channel may still succeed on a retry")

	_, err = notify.NewFanOutNotifier(notify.FanOutConfig{})
	assert.ErrorIs(t, err, notify.ErrInvalidConfig)
	bad := []notify.Channel{{Name: "a", Notifier: ok}, {Name: "a"}, {Notifier: ok}}
	_, err = notify.NewFanOutNotifier(notify.FanOutConfig{Channels: bad})
	require.Error(t, err)
	for _, want := range []string{"used twice", "nil Notifier", "has no name"} {
		assert.Contains(t, err.Error(), want)
	}
	// The one-release wrapper validates the same way.
	_, old := notify.NewFanOut(nil, bad...)
	assert.Equal(t, err.Error(), old.Error())
}

// receiver is a webhook endpoint that verifies signatures like a host would.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	got    []notify.WebhookPayload
	status atomic.Int32 // when non-zero, answer this instead
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := notify.VerifyWebhook(rc.secret, r.Header.Get(notify.SignatureHeader), body, time.Now(), 0); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s := rc.status.Load(); s != 0 {
		http.Error(w, "configured failure", int(s))
		return
	}
	var p notify.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if p.Key != r.Header.Get(notify.KeyHeader) {
		http.Error(w, "key header mismatch", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, p)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) deliveries() []notifytest.Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []notifytest.Delivery
	for _, p := range rc.got {
		out = append(out, notifytest.Delivery{Kind: p.Kind, Key: p.Key, To: p.To.Email})
	}
	return out
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newWebhook(t *testing.T, rc *receiver, r *notify.Renderer) *notify.Webhook {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	w, err := notify.NewWebhook(notify.WebhookConfig{URL: srv.URL + "/hooks/renewkit", Secret: testSecret,
		Client: srv.Client(), Renderer: r})
	require.NoError(t, err)
	return w
}

func TestWebhookConformance(t *testing.T) {
	r := newRenderer(t)
	notifytest.Run(t, func(t *testing.T) notifytest.Harness {
		rc := &receiver{secret: testSecret}
		return notifytest.Harness{Notifier: newWebhook(t, rc, r), Delivered: rc.deliveries}
	})
}

func TestWebhookPayloadAndStatusMapping(t *testing.T) {
	rc := &receiver{secret: testSecret}
	w := newWebhook(t, rc, newRenderer(t))
	n := notify.SampleNotification(billing.NotificationKindPaymentFailed, "pt-BR")
	require.NoError(t, w.Notify(context.Background(), n))
	require.Len(t, rc.got, 1)
	p := rc.got[0]
	assert.Equal(t, n.Key, p.Key)
	assert.Equal(t, n.To, p.To)
	assert.Equal(t, "pt-BR", p.Locale)
	assert.Equal(t, "Não conseguimos processar seu pagamento", p.Subject)
	assert.Contains(t, p.Text, "R$ 49,90")
	assert.Equal(t, n.Data.Amount, p.Data.Amount)

	for status, permanent := range map[int]bool{400: true, 404: true, 410: true, 422: true,
		408: false, 429: false, 500: false, 502: false, 503: false} {
		rc.status.Store(int32(status))
		err := w.Notify(context.Background(), n)
		require.Error(t, err, status)
		var we *notify.WebhookError
		require.ErrorAs(t, err, &we)
		assert.Equal(t, status, we.StatusCode)
		assert.Equal(t, permanent, errors.Is(err, billing.ErrUndeliverable), "status %d", status)
		assert.ErrorIs(t, err, notify.ErrWebhookStatus)
	}

	// A network error is transient.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	down, err := notify.NewWebhook(notify.WebhookConfig{URL: url, Secret: testSecret})
	require.NoError(t, err)
	err = down.Notify(context.Background(), n)
	require.Error(t, err)
	assert.NotErrorIs(t, err, billing.ErrUndeliverable)
}

func TestVerifyWebhook(t *testing.T) {
	body := []byte(`{"kind":"expiring"}`)
	now := time.Unix(1_773_800_000, 0)
	h := notify.SignWebhook(testSecret, now, body)
	assert.NoError(t, notify.VerifyWebhook(testSecret, h, body, now.Add(time.Minute), 0))
	assert.ErrorIs(t, notify.VerifyWebhook(testSecret, h, []byte(`{"kind":"expired"}`), now, 0), notify.ErrInvalidSignature)
	assert.ErrorIs(t, notify.VerifyWebhook([]byte("another-secret-another"), h, body, now, 0), notify.ErrInvalidSignature)
	assert.ErrorIs(t, notify.VerifyWebhook(testSecret, h, body, now.Add(10*time.Minute), 0), notify.ErrSignatureExpired)
	assert.ErrorIs(t, notify.VerifyWebhook(testSecret, h, body, now.Add(-10*time.Minute), 0), notify.ErrSignatureExpired)
	assert.NoError(t, notify.VerifyWebhook(testSecret, h, body, now.Add(10*time.Minute), time.Hour))
	for _, bad := range []string{"", "t=abc,v1=00", "v1=" + strings.Repeat("0", 64), "t=1", "garbage"} {
		assert.ErrorIs(t, notify.VerifyWebhook(testSecret, bad, body, now, 0), notify.ErrInvalidSignature, bad)
	}
	_, err := notify.NewWebhook(notify.WebhookConfig{URL: "ftp://x", Secret: []byte("short")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "URL")
	assert.Contains(t, err.Error(), "Secret")
}
