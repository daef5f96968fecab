package mercadopagogw

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// DefaultBaseURL is where the Mercado Pago API lives.
const DefaultBaseURL = "https://api.mercadopago.com"

// DefaultTolerance is the replay window of a signature's ts when Config.Tolerance is 0.
const DefaultTolerance = 15 * time.Minute

// Doer sends HTTP requests; *http.Client is one.
//
// Deprecated: Config.HTTPClient is an *http.Client, as in every gateway package.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// Config configures the webhook handler and the renewal lookup. The zero value of each
// optional field is the documented default.
type Config struct {
	// AccessToken is the application's access token (APP_USR-...), used to read payments
	// and preapprovals. Required.
	AccessToken string
	// WebhookSecret is the "secret signature" shown in Your integrations > Webhooks. It
	// verifies x-signature. Required by NewWebhookHandler.
	WebhookSecret string
	// BaseURL of the API; default DefaultBaseURL. Tests point it at a local server: the
	// handler rewrites sdk-go's requests to it, since sdk-go has no base URL option.
	BaseURL string
	// HTTPClient sends the API requests; default an *http.Client with Timeout. sdk-go's own
	// requester (three retries two seconds apart) is not used: the inbox retries an event
	// on its backoff instead.
	HTTPClient *http.Client
	// Timeout bounds each API call. Default 10s.
	Timeout time.Duration
	// Tolerance rejects signatures whose ts is further than this from the clock, either way
	// (replay protection: a captured notification cannot be resent later). Default
	// DefaultTolerance (15 minutes); there is no way to turn the check off.
	Tolerance time.Duration
	// AcceptLegacyIPN accepts unsigned IPN notifications (?topic=payment&id=...). Their
	// content is never trusted: the payment is read from the API. Default off: IPN carries
	// no signature, so anyone can make renewkit ask the API about a payment.
	AcceptLegacyIPN bool
	// MaxBodyBytes is the largest body accepted; default 1 MiB.
	MaxBodyBytes int64
	// Plans maps Mercado Pago preapproval plan ids (preapproval_plan_id) to renewkit plan
	// ids. A preapproval renewkit does not know yet is created only when its plan maps to
	// the plan its signed external_reference names (billing.Service.SignReference); one
	// without a plan must charge (auto_recurring) at least that plan's price in its
	// currency. Every charge is compared with the plan's price.
	Plans map[string]string
	// Logger receives the handler's log lines (never a secret or a signature). Default:
	// the billing core's logger.
	Logger *slog.Logger
	// Clock is what the signature's ts is checked against. Default: the billing core's
	// clock.
	Clock billing.Clock
	// ProcessInline makes the webhook handler apply each notification in the request and
	// answer with the outcome, for a host that wants it in the response (and for tests). By
	// default the handler stores the verified notification in the billing inbox, answers
	// 200 at once and billing.InboxWorker applies it.
	ProcessInline bool
}

// LogValue keeps the access token and the webhook secret out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.Bool("access_token", c.AccessToken != ""),
		slog.Bool("webhook_secret", c.WebhookSecret != ""),
		slog.Bool("accept_legacy_ipn", c.AcceptLegacyIPN),
		slog.Duration("tolerance", c.Tolerance),
	)
}

// Validate reports every problem with the configuration, joined. It never echoes secrets.
func (c Config) Validate() error {
	var errs []error
	if c.AccessToken == "" {
		errs = append(errs, errors.New("AccessToken is empty: set it to the application's access token (Your integrations > Credentials)"))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("BaseURL is not an absolute http(s) URL: leave it empty for "+DefaultBaseURL))
		}
	}
	for name, d := range map[string]time.Duration{"Timeout": c.Timeout, "Tolerance": c.Tolerance} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%v): use 0 for the default", name, d))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes is negative (%d): use 0 for 1 MiB", c.MaxBodyBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.Timeout}
	}
}
