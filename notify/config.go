package notify

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Locales renewkit ships templates for, in canonical form.
const (
	LocalePtBR = "pt-BR"
	LocaleEn   = "en"
)

// Locales lists every locale with embedded templates.
func Locales() []string { return []string{LocalePtBR, LocaleEn} }

// Theme holds the colours used by the HTML layout, as CSS hex colours ("#2563eb").
// A zero field takes the default shown.
type Theme struct {
	Primary    string // buttons, header band: "#2563eb"
	Text       string // body text: "#1f2937"
	Muted      string // footers and secondary text: "#6b7280"
	Background string // page background around the card: "#f3f4f6"
	Card       string // the message card: "#ffffff"
	ButtonText string // text on buttons: "#ffffff"
}

// Paths are the frontend routes links point to, joined to Config.FrontendURL. A zero field
// takes the default shown. Subscription and payment ids are appended as query parameters
// (?subscription=..., ?payment=...).
type Paths struct {
	Renew         string // expiring: manual renewal page, "/billing/renew"
	UpdatePayment string // payment_failed: update the payment method, "/billing/payment-method"
	Account       string // subscription details, "/account/subscription"
	Dashboard     string // the app's home after login, "/dashboard"
}

// Config configures a Renderer. The zero value of every field except FrontendURL is a
// documented default.
type Config struct {
	// FrontendURL is the public base URL of the host application (FRONTEND_URL),
	// for example "https://app.example.com". Required.
	FrontendURL string
	// AdminURL is the base URL of the jobs dashboard, used for the run link of operator
	// alerts: {AdminURL}/{job_id}?run={run_id}. Default: FrontendURL + "/admin/jobs".
	AdminURL string
	// Paths are the frontend routes for links. Zero fields take defaults (see Paths).
	Paths Paths
	// ProductName appears in subjects, greetings and footers. Default "Renewkit".
	ProductName string
	// SupportEmail, when set, is shown in footers as a mailto link. Default: not shown.
	SupportEmail string
	// Theme holds the HTML colours. Zero fields take defaults (see Theme).
	Theme Theme
	// DefaultLocale is used when a recipient's locale is empty or unsupported.
	// Default "pt-BR". Accepts the same spellings as recipients.
	DefaultLocale string
	// DefaultTimeZone (IANA name) is used when a recipient's zone is empty or unknown.
	// Default "UTC".
	DefaultTimeZone string
	// Templates optionally overrides embedded templates. A file "{locale}/{kind}.tmpl"
	// (for example "pt-BR/expiring.tmpl") replaces that message, defining the templates
	// "subject", "text" and "html"; "layout.html.tmpl" replaces the HTML shell, which
	// must execute {{template "html" .}}. Files not present keep the embedded version.
	Templates fs.FS
	// Logger receives warnings (for example an unknown recipient time zone).
	// Default slog.Default().
	Logger *slog.Logger
}

var hexColour = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// withDefaults returns a copy with zero fields filled in.
func (c Config) withDefaults() Config {
	c.FrontendURL = strings.TrimRight(c.FrontendURL, "/")
	if c.AdminURL == "" && c.FrontendURL != "" {
		c.AdminURL = c.FrontendURL + "/admin/jobs"
	}
	c.AdminURL = strings.TrimRight(c.AdminURL, "/")
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Paths.Renew, "/billing/renew")
	def(&c.Paths.UpdatePayment, "/billing/payment-method")
	def(&c.Paths.Account, "/account/subscription")
	def(&c.Paths.Dashboard, "/dashboard")
	def(&c.ProductName, "Renewkit")
	def(&c.Theme.Primary, "#2563eb")
	def(&c.Theme.Text, "#1f2937")
	def(&c.Theme.Muted, "#6b7280")
	def(&c.Theme.Background, "#f3f4f6")
	def(&c.Theme.Card, "#ffffff")
	def(&c.Theme.ButtonText, "#ffffff")
	def(&c.DefaultLocale, LocalePtBR)
	def(&c.DefaultTimeZone, "UTC")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem with the configuration, joined with errors.Join. Each
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.FrontendURL == "" {
		bad("missing FrontendURL: set it to the public URL of the app (FRONTEND_URL), e.g. https://app.example.com")
	} else if err := checkBaseURL(c.FrontendURL); err != nil {
		bad("FrontendURL %q: %v", c.FrontendURL, err)
	}
	if c.AdminURL != "" {
		if err := checkBaseURL(c.AdminURL); err != nil {
			bad("AdminURL %q: %v", c.AdminURL, err)
		}
	}
	for _, f := range [][2]string{{"Renew", c.Paths.Renew}, {"UpdatePayment", c.Paths.UpdatePayment},
		{"Account", c.Paths.Account}, {"Dashboard", c.Paths.Dashboard}} {
		if !strings.HasPrefix(f[1], "/") {
			bad("Paths.%s %q must start with /", f[0], f[1])
		}
	}
	for _, f := range [][2]string{{"Primary", c.Theme.Primary}, {"Text", c.Theme.Text},
		{"Muted", c.Theme.Muted}, {"Background", c.Theme.Background}, {"Card", c.Theme.Card},
		{"ButtonText", c.Theme.ButtonText}} {
		if !hexColour.MatchString(f[1]) {
			bad("Theme.%s %q is not a hex colour like #2563eb", f[0], f[1])
		}
	}
	if _, ok := canonicalLocale(c.DefaultLocale); !ok {
		bad("DefaultLocale %q is not supported: use %q or %q", c.DefaultLocale, LocalePtBR, LocaleEn)
	}
	if _, err := time.LoadLocation(c.DefaultTimeZone); err != nil {
		bad("DefaultTimeZone %q: %v (use an IANA name such as America/Sao_Paulo, or import time/tzdata)", c.DefaultTimeZone, err)
	}
	if c.SupportEmail != "" && !strings.Contains(c.SupportEmail, "@") {
		bad("SupportEmail %q is not an email address", c.SupportEmail)
	}
	return errors.Join(errs...)
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an absolute http or https URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not have a query or fragment")
	}
	return nil
}
