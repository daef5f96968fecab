package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Webhook headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
	SignatureHeader = "X-Renewkit-Signature"
	// KeyHeader carries Notification.Key, the send-once key, for deduplication.
	KeyHeader = "X-Renewkit-Key"
	// KindHeader carries Notification.Kind.
	KindHeader = "X-Renewkit-Kind"
)

// WebhookConfig configures a Webhook channel.
type WebhookConfig struct {
	// URL receives the POSTs. Required; http or https.
	URL string
	// Secret is the shared HMAC-SHA256 key. Required, at least 16 bytes.
	Secret []byte
	// Client sends the requests. Default: a client with a 10s timeout.
	Client *http.Client
	// Renderer, when set, adds the rendered subject and text part to the payload so the
	// receiver can forward a ready-made message (SMS, WhatsApp). Default: not rendered.
	Renderer *Renderer
	// Clock is the clock for the signature timestamp. Default: the wall clock.
	Clock billing.Clock
	// Now is read when Clock is nil.
	//
	// Deprecated: set Clock.
	Now func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// WebhookPayload is the JSON body a Webhook posts.
type WebhookPayload struct {
	Kind    billing.NotificationKind `json:"kind"`
	Key     string                   `json:"key"`
	To      billing.Recipient        `json:"to"`
	Data    billing.NotificationData `json:"data"`
	Locale  string                   `json:"locale,omitempty"`
	Subject string                   `json:"subject,omitempty"`
	Text    string                   `json:"text,omitempty"`
	SentAt  time.Time                `json:"sent_at"`
}

// WebhookError is returned when the receiver answers with a non-2xx status. It wraps
// ErrWebhookStatus, and billing.ErrUndeliverable when Permanent (a 4xx other than 408,
// 425 and 429: retrying the same request cannot succeed).
type WebhookError struct {
	StatusCode int
	Permanent  bool
	Body       string // the first bytes of the response, for diagnosis
}

func (e *WebhookError) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	return fmt.Sprintf("notify: webhook receiver answered %d (%s): %s", e.StatusCode, kind, e.Body)
}

// Unwrap returns ErrWebhookStatus and, when permanent, billing.ErrUndeliverable.
func (e *WebhookError) Unwrap() []error {
	if e.Permanent {
		return []error{ErrWebhookStatus, billing.ErrUndeliverable}
	}
	return []error{ErrWebhookStatus}
}

// Webhook is a channel that POSTs each notification as JSON (WebhookPayload) signed with
// HMAC-SHA256, for hosts that forward notifications to WhatsApp, SMS or their own systems.
// Network errors and 408/425/429/5xx answers are transient; other 4xx are permanent.
// Receivers check requests with VerifyWebhook.
type Webhook struct {
	cfg WebhookConfig
}

var _ billing.Notifier = (*Webhook)(nil)

// Validate reports every problem with the configuration, joined with errors.Join.
func (c WebhookConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, fmt.Errorf("%w: missing webhook URL", ErrInvalidConfig))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%w: webhook URL %q must be an absolute http or https URL", ErrInvalidConfig, c.URL))
	}
	if len(c.Secret) < 16 {
		errs = append(errs, fmt.Errorf("%w: webhook Secret must be at least 16 bytes (e.g. 32 random bytes)", ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// NewWebhook validates cfg and returns the channel.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	switch {
	case cfg.Clock != nil:
		cfg.Now = cfg.Clock.Now
	case cfg.Now == nil:
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	return &Webhook{cfg: cfg}, nil
}

// Notify posts n to the configured URL.
func (w *Webhook) Notify(ctx context.Context, n billing.Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := w.cfg.Now()
	p := WebhookPayload{Kind: n.Kind, Key: n.Key, To: n.To, Data: n.Data, SentAt: now.UTC()}
	if w.cfg.Renderer != nil {
		m, err := w.cfg.Renderer.RenderNotification(n)
		if err != nil {
			return err
		}
		p.Locale, p.Subject, p.Text = m.Locale, m.Subject, m.Text
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("notify: encoding webhook payload: %w (%w)", err, billing.ErrUndeliverable)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notify: building webhook request: %w (%w)", err, billing.ErrUndeliverable)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "renewkit-notify")
	req.Header.Set(SignatureHeader, SignWebhook(w.cfg.Secret, now, body))
	req.Header.Set(KeyHeader, n.Key)
	req.Header.Set(KindHeader, string(n.Kind))
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("notify: webhook POST: %w", err) // transient: network, timeout, cancel
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		w.cfg.Logger.DebugContext(ctx, "notify: webhook delivered", "kind", n.Kind, "key", n.Key, "status", resp.StatusCode)
		return nil
	}
	sc := resp.StatusCode
	permanent := sc >= 400 && sc < 500 && sc != http.StatusRequestTimeout && sc != http.StatusTooEarly &&
		sc != http.StatusTooManyRequests
	return &WebhookError{StatusCode: sc, Permanent: permanent, Body: strings.TrimSpace(string(snippet))}
}

// SignWebhook returns the SignatureHeader value for body sent at t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>". Receivers' tests use it to
// build signed requests.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks a SignatureHeader value against the raw request body, for
// receivers. It returns ErrInvalidSignature when the header is malformed or no v1
// signature matches, and ErrSignatureExpired when the timestamp is more than tolerance
// away from now (tolerance <= 0 means 5 minutes). Verify before decoding the body.
func VerifyWebhook(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: header must be t=<unix>,v1=<hex>", ErrInvalidSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp", ErrInvalidSignature)
	}
	want := webhookMAC(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: no signature matches the body", ErrInvalidSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s ago", ErrSignatureExpired, d.Round(time.Second))
	}
	return nil
}
