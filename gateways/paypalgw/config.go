package paypalgw

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Modes select PayPal's API base when Config.BaseURL is empty.
const (
	ModeLive    = "live"
	ModeSandbox = "sandbox"
)

// PayPal's REST API bases for the two modes.
const (
	APIBaseLive    = "https://api-m.paypal.com"
	APIBaseSandbox = "https://api-m.sandbox.paypal.com"
)

// Verification selects how a delivery is proven to come from PayPal.
type Verification string

const (
	// VerifyOffline checks the RSA-SHA256 signature locally against the certificate at
	// PAYPAL-CERT-URL (fetched over HTTPS from an allowlisted PayPal host, cached, chain
	// and SAN checked). It needs no API credentials, but without them events are only
	// acknowledged. The default.
	VerifyOffline Verification = "offline"
	// VerifyOnline asks PayPal's verify-webhook-signature API for every delivery. Needs
	// ClientID and ClientSecret.
	VerifyOnline Verification = "online"
)

// CertHosts returns the hosts PayPal serves its webhook signing certificates from (the
// default Config.CertHostAllowlist), in a new slice each call.
func CertHosts() []string {
	return []string{"api.paypal.com", "api.sandbox.paypal.com", "api-m.paypal.com", "api-m.sandbox.paypal.com"}
}

// CertSANs returns the names PayPal's webhook signing certificates are issued for (live and
// sandbox; the default Config.CertSANs), in a new slice each call. The leaf certificate must
// carry one of them as a DNS subject alternative name.
func CertSANs() []string {
	return []string{"messageverificationcerts.paypal.com", "messageverificationcerts.sandbox.paypal.com"}
}

// DefaultCertHosts are the hosts PayPal serves its webhook signing certificates from.
//
// Deprecated: use CertHosts, which a caller cannot change for everyone else.
var DefaultCertHosts = CertHosts()

// DefaultCertSANs are the names PayPal's webhook signing certificates are issued for.
//
// Deprecated: use CertSANs, which a caller cannot change for everyone else.
var DefaultCertSANs = CertSANs()

// Defaults of the zero Config fields.
const (
	DefaultCertFailureTTL       = time.Minute
	DefaultCertFetchConcurrency = 4
	DefaultTolerance            = 5 * time.Minute
	DefaultCertCacheSize        = 16
	DefaultCertCacheTTL         = 24 * time.Hour
	DefaultCancelWait           = 6 * time.Hour
	DefaultHTTPTimeout          = 15 * time.Second
	maxCertBytes                = 64 << 10
)

// Config configures the webhook handler and the renewal lookup. The zero value of each
// optional field is the documented default; WebhookID is required for the handler.
type Config struct {
	// ClientID and ClientSecret of the PayPal REST app. Without them deliveries are verified
	// offline and acknowledged, but never applied (the offline signature covers the body only
	// through its CRC32). With them the subscription and the sale an event names are read
	// from the PayPal API before anything changes. Never logged.
	ClientID     string
	ClientSecret string
	// WebhookID is the id PayPal gave the webhook listener (developer dashboard). It is part
	// of the signed message, so events signed for another listener are rejected.
	WebhookID string
	// Mode is ModeLive (default) or ModeSandbox; it picks the API base.
	Mode string
	// BaseURL overrides Mode (tests point it at a local server), e.g. "http://127.0.0.1:8080".
	BaseURL string
	// HTTPClient for API calls and certificate downloads. Default: a client with a 15 s
	// timeout. Redirects of certificate downloads are checked against the allowlist too.
	HTTPClient *http.Client
	// Verification is VerifyOffline (default) or VerifyOnline.
	Verification Verification
	// CertHostAllowlist lists the hosts PAYPAL-CERT-URL may point at, as "host" (port 443
	// only) or "host:port". Default CertHosts(). Any other URL, and any non-https URL,
	// is rejected before a request is made.
	CertHostAllowlist []string
	// RootCAs verifies the signing certificate chain. Default: the system roots. Tests
	// pass the pool of their own CA (see TestSigner).
	RootCAs *x509.CertPool
	// CertCacheSize bounds the certificate cache (entries by URL). Default 16.
	CertCacheSize int
	// CertSANs lists the DNS names the signing certificate must carry in its subject
	// alternative names (any one of them). Default CertSANs(). Tests set the name of
	// their own signing certificate (see TestSigner).
	CertSANs []string
	// CertFailureTTL is how long a certificate URL whose download or parsing failed is
	// answered from that failure without a new request. Default 1 minute.
	CertFailureTTL time.Duration
	// CertFetchConcurrency bounds the certificate downloads in flight at once, over all URLs.
	// Default 4. A delivery waits for a slot within its own context.
	CertFetchConcurrency int
	// CertCacheTTL is the longest a downloaded certificate is reused; an entry also expires
	// with the certificate. Default 24h.
	CertCacheTTL time.Duration
	// Tolerance is how far PAYPAL-TRANSMISSION-TIME may be from the clock, either way.
	// Default 5 minutes. PayPal signs every retry afresh, so redeliveries pass.
	Tolerance time.Duration
	// CancelWait: a CANCELLED or EXPIRED event that arrives before the charges PayPal says
	// preceded it (billing_info.cycle_executions) is answered 503 so PayPal redelivers it,
	// for at most this long after the event was created. Default 6h; negative disables.
	CancelWait time.Duration
	// MaxBodyBytes limits the request body. Default 1 MiB.
	MaxBodyBytes int64
	// Plans maps PayPal plan ids (P-...) to renewkit plan ids. A PayPal subscription
	// renewkit does not know yet is created only when its plan_id maps to the plan its
	// signed custom_id names (billing.Service.SignReference); every sale is compared with
	// that plan's price. Empty: no subscription is created from PayPal events.
	Plans map[string]string
	// Logger receives the handler's log lines (never a secret or a signature). Default:
	// the billing core's logger.
	Logger *slog.Logger
	// Clock is what transmission times and certificate validity are checked against.
	// Default: the billing core's clock.
	Clock billing.Clock
	// ProcessInline makes the webhook handler apply each event in the request and answer
	// with the outcome, for a host that wants it in the response (and for tests). By
	// default the handler stores the verified event in the billing inbox, answers 200 at
	// once and billing.InboxWorker applies it.
	ProcessInline bool
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("webhook_id", c.WebhookID),
		slog.String("base_url", c.apiBase()),
		slog.String("verification", string(c.verification())),
		slog.Bool("credentials", c.hasCredentials()),
	)
}

// Validate reports every problem at once, wrapping ErrInvalidConfig. It never includes the
// secret.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.WebhookID) == "" {
		errs = append(errs, errors.New("missing WebhookID: copy the webhook id from the PayPal developer dashboard (Apps & Credentials > your app > Webhooks)"))
	}
	if (c.ClientID == "") != (c.ClientSecret == "") {
		errs = append(errs, errors.New("ClientID and ClientSecret go together: set both (REST app credentials) or neither"))
	}
	switch c.Mode {
	case "", ModeLive, ModeSandbox:
	default:
		errs = append(errs, fmt.Errorf("field Mode %q: use %q or %q (or set BaseURL)", c.Mode, ModeLive, ModeSandbox))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("BaseURL %q: want an absolute http(s) URL such as %s", c.BaseURL, APIBaseSandbox))
		}
	}
	switch c.Verification {
	case "", VerifyOffline:
	case VerifyOnline:
		if !c.hasCredentials() {
			errs = append(errs, errors.New("Verification online needs ClientID and ClientSecret: set them or use VerifyOffline"))
		}
	default:
		errs = append(errs, fmt.Errorf("Verification %q: use %q or %q", c.Verification, VerifyOffline, VerifyOnline))
	}
	for _, h := range c.CertHostAllowlist {
		if h == "" || strings.ContainsAny(h, "/@?# ") {
			errs = append(errs, fmt.Errorf("CertHostAllowlist entry %q: want a host or host:port, without scheme or path", h))
		}
	}
	if c.CertCacheSize < 0 {
		errs = append(errs, fmt.Errorf("CertCacheSize %d is negative; use 0 for the default", c.CertCacheSize))
	}
	for _, n := range c.CertSANs {
		if n == "" || strings.ContainsAny(n, "/@?#: ") {
			errs = append(errs, fmt.Errorf("CertSANs entry %q: want a DNS name such as %s", n, CertSANs()[0]))
		}
	}
	if c.CertFailureTTL < 0 {
		errs = append(errs, fmt.Errorf("CertFailureTTL %v is negative; use 0 for the default", c.CertFailureTTL))
	}
	if c.CertFetchConcurrency < 0 {
		errs = append(errs, fmt.Errorf("CertFetchConcurrency %d is negative; use 0 for the default", c.CertFetchConcurrency))
	}
	if c.CertCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("CertCacheTTL %v is negative; use 0 for the default", c.CertCacheTTL))
	}
	if c.Tolerance < 0 {
		errs = append(errs, fmt.Errorf("field Tolerance %v is negative; use 0 for the default", c.Tolerance))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes %d is negative; use 0 for the default", c.MaxBodyBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c Config) hasCredentials() bool { return c.ClientID != "" && c.ClientSecret != "" }

func (c Config) verification() Verification {
	if c.Verification == "" {
		return VerifyOffline
	}
	return c.Verification
}

func (c Config) apiBase() string {
	switch {
	case c.BaseURL != "":
		return strings.TrimRight(c.BaseURL, "/")
	case c.Mode == ModeSandbox:
		return APIBaseSandbox
	}
	return APIBaseLive
}

func (c Config) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: DefaultHTTPTimeout}
}

func (c Config) tolerance() time.Duration {
	if c.Tolerance == 0 {
		return DefaultTolerance
	}
	return c.Tolerance
}

func (c Config) cancelWait() time.Duration {
	if c.CancelWait == 0 {
		return DefaultCancelWait
	}
	return c.CancelWait
}

func (c Config) certSANs() []string {
	if len(c.CertSANs) == 0 {
		return CertSANs()
	}
	return c.CertSANs
}

// certHosts returns the allowlist normalised to lower-case host:port.
func (c Config) certHosts() map[string]bool {
	list := c.CertHostAllowlist
	if len(list) == 0 {
		list = CertHosts()
	}
	m := make(map[string]bool, len(list))
	for _, h := range list {
		h = strings.ToLower(h)
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "443")
		}
		m[h] = true
	}
	return m
}
