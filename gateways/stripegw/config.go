package stripegw

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
	"github.com/stripe/stripe-go/v76"
)

// DefaultTolerance is how far the signed timestamp of a delivery may be from the clock.
const DefaultTolerance = 5 * time.Minute

// DefaultBaseURL is Stripe's API.
const DefaultBaseURL = stripe.APIURL

// DefaultBackendURL is Stripe's API.
//
// Deprecated: use DefaultBaseURL.
const DefaultBackendURL = DefaultBaseURL

// Config configures the webhook handler and the renewal lookup. The zero value of each field
// is its documented default; Validate reports every problem at once. Secrets never appear in
// errors or logs.
type Config struct {
	// SecretKey is the Stripe API key (sk_... or a restricted rk_... with read access to
	// subscriptions, invoices and checkout sessions). Required by RenewalLookup. In the
	// webhook handler it is optional: with it, the objects an event names are re-fetched
	// from the API and the API's answer wins over the body; without it the signed body is
	// trusted (see the package documentation).
	SecretKey string
	// WebhookSecret is the endpoint's signing secret (whsec_...). Required by the handler.
	WebhookSecret string
	// BaseURL is the API base URL. Default DefaultBaseURL; tests point it at stripe-mock or
	// a local server.
	BaseURL string
	// HTTPClient calls the API. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Tolerance is how far the Stripe-Signature timestamp may be from the clock, in either
	// direction. Default DefaultTolerance (Stripe's own default).
	Tolerance time.Duration
	// MaxBodyBytes limits the webhook body. Default 1 MiB.
	MaxBodyBytes int64
	// Logger receives the handler's and the lookup's log lines (never a secret or a
	// signature). Default: the billing core's logger for the handler, slog.Default() for the
	// lookup.
	Logger *slog.Logger
	// Clock is what signature timestamps are checked against. Default: the billing core's
	// clock, so one clock drives billing and webhook tolerance.
	Clock billing.Clock
	// ProcessInline makes the webhook handler apply each event in the request and answer
	// with the outcome, for a host that wants it in the response (and for tests). By
	// default the handler stores the verified event in the billing inbox, answers 200 at
	// once and billing.InboxWorker applies it.
	ProcessInline bool
	// Prices maps Stripe price ids (price_...) to renewkit plan ids. A subscription
	// renewkit does not know yet is created only when every price of its items maps to the
	// plan its signed reference names (with a SecretKey the items are re-read from the
	// API; without one, items the body lists are checked). Every paid invoice is compared
	// with that plan's price.
	Prices map[string]string
	// MaxNetworkRetries is how often the SDK retries a failed API call (with backoff).
	// Default 2 (the SDK's default); -1 for none.
	MaxNetworkRetries int
}

// LogValue keeps the secret key and the webhook secret out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.Bool("secret_key", c.SecretKey != ""),
		slog.Bool("webhook_secret", c.WebhookSecret != ""),
	)
}

// Validate reports every problem with the configuration, joined, each wrapping
// ErrInvalidConfig. It checks what both the handler and the lookup use; each constructor
// adds the secret it needs.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Tolerance < 0 {
		bad("Tolerance is negative; use 0 for the default of %v", DefaultTolerance)
	}
	if c.MaxBodyBytes < 0 {
		bad("MaxBodyBytes is negative; use 0 for the default of %d bytes", hookhttp.MaxBody)
	}
	if c.MaxNetworkRetries < -1 {
		bad("MaxNetworkRetries must be -1 (none), 0 (default) or a positive count")
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("BaseURL must be an absolute http(s) URL such as %s", DefaultBaseURL)
		}
	}
	if c.SecretKey != "" && strings.TrimSpace(c.SecretKey) != c.SecretKey {
		bad("SecretKey has surrounding whitespace; copy the key from the Stripe dashboard again")
	}
	if c.WebhookSecret != "" && strings.TrimSpace(c.WebhookSecret) != c.WebhookSecret {
		bad("WebhookSecret has surrounding whitespace; copy the signing secret again")
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = hookhttp.MaxBody
	}
}
