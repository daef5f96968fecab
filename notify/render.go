package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/renewkit/renewkit/billing"
)

//go:embed templates
var embedded embed.FS

// Message is a rendered notification.
type Message struct {
	Kind    billing.NotificationKind
	Locale  string // the locale actually used ("pt-BR" or "en")
	Subject string // one line, UTF-8
	HTML    string // a complete HTML document
	Text    string // the plain-text alternative
}

// Data is what Render formats: the recipient's name, address and time zone, and the
// notification's fields.
type Data struct {
	Name     string
	Email    string
	TimeZone string // IANA zone for dates; empty: Config.DefaultTimeZone
	billing.NotificationData
}

// View is what templates see (the dot). Dates, money and links are already formatted for
// the locale and the recipient's zone; host templates can use every field.
type View struct {
	Kind         billing.NotificationKind
	Locale       string
	Product      string
	SupportEmail string
	Theme        Theme

	Name           string // recipient's name; may be empty
	Email          string
	PlanName       string
	SubscriptionID string
	PaymentID      string
	Amount         string // "R$ 49,90", "$49.90"; empty when the data has no amount
	PeriodStart    string // "15/03/2026", "March 15, 2026"
	PeriodEnd      string // expiry or next charge date, same format
	PeriodEndLong  string // "15 de março de 2026"
	PeriodEndTime  string // with time and zone: "15/03/2026 14:30 (-03)"
	DaysRemaining  int
	Gateway        string // display name: "Stripe", "Mercado Pago", "PayPal"
	Reason         string // payment failure reason

	JobID            string
	RunID            string
	Error            string
	ConsecutiveFails int

	RenewURL         string
	UpdatePaymentURL string
	AccountURL       string
	DashboardURL     string
	RunURL           string // operator alerts: the run in the jobs dashboard
	AdminURL         string
}

type tmplSet struct {
	text *texttemplate.Template // defines "subject" and "text"
	html *htmltemplate.Template // executes "layout"
}

type setKey struct {
	kind   billing.NotificationKind
	locale string
}

// Renderer renders notifications from templates parsed once at construction. It is safe
// for concurrent use.
type Renderer struct {
	cfg   Config
	sets  map[setKey]tmplSet
	zones sync.Map // zone name -> *time.Location
}

// NewRenderer validates cfg, parses the embedded templates (and the overrides in
// cfg.Templates) and renders every kind in every locale with sample data, so a template
// that does not parse or uses a field View lacks fails here rather than at send time.
func NewRenderer(cfg Config) (*Renderer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Renderer{cfg: cfg, sets: make(map[setKey]tmplSet)}
	layout, err := r.readTemplate("layout.html.tmpl")
	if err != nil {
		return nil, err
	}
	common, err := r.readTemplate("common.tmpl")
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, locale := range Locales() {
		for _, kind := range billing.AllNotificationKinds() {
			name := locale + "/" + string(kind) + ".tmpl"
			if err := r.load(setKey{kind, locale}, name, layout, common); err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := r.Render(kind, locale, SampleData(kind, locale)); err != nil {
				errs = append(errs, fmt.Errorf("%s with sample data: %w", name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Config returns the configuration with defaults filled in.
func (r *Renderer) Config() Config { return r.cfg }

func (r *Renderer) readTemplate(name string) (string, error) {
	if r.cfg.Templates != nil {
		b, err := fs.ReadFile(r.cfg.Templates, name)
		if err == nil {
			return string(b), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: reading override %s: %w", ErrTemplate, name, err)
		}
	}
	b, err := embedded.ReadFile("templates/" + name)
	if err != nil {
		return "", fmt.Errorf("%w: embedded %s: %w", ErrTemplate, name, err)
	}
	return string(b), nil
}

// ButtonView is the dot of the "button" template: {{template "button" (button . .RenewURL "Renew")}}.
type ButtonView struct {
	View
	URL   string
	Label string
}

// RowView is the dot of the "row" template, one line of a details table:
// {{template "row" (row . "Plan" .PlanName)}}.
type RowView struct {
	View
	Label string
	Value string
}

func funcs() map[string]any {
	return map[string]any{
		"row":    func(v View, label, value string) RowView { return RowView{View: v, Label: label, Value: value} },
		"button": func(v View, url, label string) ButtonView { return ButtonView{View: v, URL: url, Label: label} },
		// plural picks the singular or plural word for n: {{plural .DaysRemaining "dia" "dias"}}.
		"plural": func(n int, one, many string) string {
			if n == 1 || n == -1 {
				return one
			}
			return many
		},
	}
}

func (r *Renderer) load(k setKey, name, layout, common string) error {
	src, err := r.readTemplate(name)
	if err != nil {
		return err
	}
	txt, err := texttemplate.New("common.tmpl").Option("missingkey=error").Funcs(funcs()).Parse(common)
	if err != nil {
		return fmt.Errorf("%w: common.tmpl: %w", ErrTemplate, err)
	}
	if txt, err = txt.New(name).Parse(src); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrTemplate, name, err)
	}
	for _, def := range []string{"subject", "text", "html"} {
		if txt.Lookup(def) == nil {
			return fmt.Errorf("%w: %s does not define {{define %q}}", ErrTemplate, name, def)
		}
	}
	html, err := htmltemplate.New("layout").Option("missingkey=error").Funcs(funcs()).Parse(layout)
	if err != nil {
		return fmt.Errorf("%w: layout.html.tmpl: %w", ErrTemplate, err)
	}
	if html, err = html.New("common.tmpl").Parse(common); err != nil {
		return fmt.Errorf("%w: common.tmpl: %w", ErrTemplate, err)
	}
	if html, err = html.New(name).Parse(src); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrTemplate, name, err)
	}
	r.sets[k] = tmplSet{text: txt, html: html}
	return nil
}

// Render renders one kind in a locale ("pt", "pt-BR", "en-US", ...; unsupported or empty
// falls back to Config.DefaultLocale). Errors wrap ErrUnknownKind or ErrTemplate, and
// billing.ErrUndeliverable since retrying cannot fix them.
func (r *Renderer) Render(kind billing.NotificationKind, locale string, data Data) (Message, error) {
	loc := r.ResolveLocale(locale)
	set, ok := r.sets[setKey{kind, loc}]
	if !ok {
		return Message{}, fmt.Errorf("%w %q (%w)", ErrUnknownKind, kind, billing.ErrUndeliverable)
	}
	v := r.view(kind, loc, data)
	var subj, text, html bytes.Buffer
	if err := set.text.ExecuteTemplate(&subj, "subject", v); err != nil {
		return Message{}, fmt.Errorf("%w: %s/%s subject: %w (%w)", ErrTemplate, loc, kind, err, billing.ErrUndeliverable)
	}
	if err := set.text.ExecuteTemplate(&text, "text", v); err != nil {
		return Message{}, fmt.Errorf("%w: %s/%s text: %w (%w)", ErrTemplate, loc, kind, err, billing.ErrUndeliverable)
	}
	if err := set.html.ExecuteTemplate(&html, "layout", v); err != nil {
		return Message{}, fmt.Errorf("%w: %s/%s html: %w (%w)", ErrTemplate, loc, kind, err, billing.ErrUndeliverable)
	}
	return Message{
		Kind:    kind,
		Locale:  loc,
		Subject: strings.Join(strings.Fields(subj.String()), " "), // one line: no header injection
		HTML:    html.String(),
		Text:    tidyText(text.String()),
	}, nil
}

// RenderNotification renders n for its recipient: locale, name and time zone come from n.To.
func (r *Renderer) RenderNotification(n billing.Notification) (Message, error) {
	return r.Render(n.Kind, n.To.Locale, Data{Name: n.To.Name, Email: n.To.Email, TimeZone: n.To.TimeZone,
		NotificationData: n.Data})
}

// ResolveLocale returns the supported locale for a recipient's locale spelling, or
// Config.DefaultLocale.
func (r *Renderer) ResolveLocale(locale string) string {
	if l, ok := canonicalLocale(locale); ok {
		return l
	}
	l, _ := canonicalLocale(r.cfg.DefaultLocale)
	return l
}

// tidyText trims trailing spaces on each line, collapses runs of blank lines and ends the
// text with one newline, so template indentation does not leak into the text part.
func tidyText(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := lines[:0]
	blank := false
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\r")
		if l == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

func (r *Renderer) zone(name string) *time.Location {
	if name == "" {
		name = r.cfg.DefaultTimeZone
	}
	if z, ok := r.zones.Load(name); ok {
		return z.(*time.Location)
	}
	z, err := time.LoadLocation(name)
	if err != nil {
		r.cfg.Logger.Warn("notify: unknown recipient time zone; using the default", "timezone", name,
			"default", r.cfg.DefaultTimeZone, "error", err)
		z, _ = time.LoadLocation(r.cfg.DefaultTimeZone)
	}
	r.zones.Store(name, z)
	return z
}

func gatewayName(g string) string {
	switch g {
	case billing.GatewayStripe:
		return "Stripe"
	case billing.GatewayMercadoPago:
		return "Mercado Pago"
	case billing.GatewayPayPal:
		return "PayPal"
	case billing.GatewayManual, "":
		return ""
	}
	return g
}

func (r *Renderer) link(path, param, id string) string {
	u := r.cfg.FrontendURL + path
	if id == "" {
		return u
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return u + sep + param + "=" + url.QueryEscape(id)
}

func (r *Renderer) view(kind billing.NotificationKind, locale string, d Data) View {
	z := r.zone(d.TimeZone)
	v := View{
		Kind:             kind,
		Locale:           locale,
		Product:          r.cfg.ProductName,
		SupportEmail:     r.cfg.SupportEmail,
		Theme:            r.cfg.Theme,
		Name:             strings.TrimSpace(d.Name),
		Email:            d.Email,
		PlanName:         d.PlanName,
		SubscriptionID:   d.SubscriptionID,
		PaymentID:        d.PaymentID,
		PeriodStart:      FormatDate(d.PeriodStart, z, locale),
		PeriodEnd:        FormatDate(d.PeriodEnd, z, locale),
		PeriodEndLong:    FormatLongDate(d.PeriodEnd, z, locale),
		PeriodEndTime:    FormatDateTime(d.PeriodEnd, z, locale),
		DaysRemaining:    d.DaysRemaining,
		Gateway:          gatewayName(d.Gateway),
		Reason:           d.Reason,
		JobID:            d.JobID,
		RunID:            d.RunID,
		Error:            d.Error,
		ConsecutiveFails: d.ConsecutiveFails,
		RenewURL:         r.link(r.cfg.Paths.Renew, "subscription", d.SubscriptionID),
		UpdatePaymentURL: r.link(r.cfg.Paths.UpdatePayment, "subscription", d.SubscriptionID),
		AccountURL:       r.link(r.cfg.Paths.Account, "", ""),
		DashboardURL:     r.link(r.cfg.Paths.Dashboard, "", ""),
		AdminURL:         r.cfg.AdminURL,
	}
	if d.Amount.Currency != "" {
		v.Amount = FormatMoney(d.Amount, locale)
	}
	if d.JobID != "" {
		v.RunURL = r.cfg.AdminURL + "/" + url.PathEscape(d.JobID)
		if d.RunID != "" {
			v.RunURL += "?run=" + url.QueryEscape(d.RunID)
		}
	}
	return v
}
