package notify_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current templates")

func newRenderer(t *testing.T) *notify.Renderer {
	t.Helper()
	r, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com/", ProductName: "Acme",
		SupportEmail: "help@acme.example"})
	require.NoError(t, err)
	return r
}

// TestGoldenText compares every kind's subject and text part in every locale with
// testdata/<locale>_<kind>.golden. Run `go test ./notify -run Golden -update` after
// changing a template on purpose, and review the diff.
func TestGoldenText(t *testing.T) {
	r := newRenderer(t)
	for _, locale := range notify.Locales() {
		for _, kind := range billing.AllNotificationKinds() {
			t.Run(locale+"/"+string(kind), func(t *testing.T) {
				m, err := r.Render(kind, locale, notify.SampleData(kind, locale))
				require.NoError(t, err)
				got := "Subject: " + m.Subject + "\n\n" + m.Text
				path := filepath.Join("testdata", locale+"_"+string(kind)+".golden")
				if *update {
					require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
					return
				}
				want, err := os.ReadFile(path)
				require.NoError(t, err, "run with -update to create it")
				assert.Equal(t, string(want), got)
			})
		}
	}
}

func TestHTMLHasNoUnresolvedMarkers(t *testing.T) {
	r := newRenderer(t)
	for _, locale := range notify.Locales() {
		for _, kind := range billing.AllNotificationKinds() {
			for name, data := range map[string]notify.Data{
				"sample": notify.SampleData(kind, locale),
				"empty":  {},
			} {
				m, err := r.Render(kind, locale, data)
				require.NoError(t, err, "%s %s %s", locale, kind, name)
				for _, part := range []string{m.HTML, m.Text, m.Subject} {
					for _, marker := range []string{"{{", "}}", "<no value>", "%!", "ZgotmplZ"} {
						assert.NotContains(t, part, marker, "%s %s %s", locale, kind, name)
					}
				}
				assert.True(t, strings.HasPrefix(m.HTML, "<!DOCTYPE html>"))
				assert.Contains(t, m.HTML, `lang="`+locale+`"`)
				assert.Contains(t, m.HTML, `role="presentation"`, "table layout")
				assert.NotContains(t, m.HTML, "<img", "works without images")
				assert.NotContains(t, m.Subject, "\n")
			}
		}
	}
}

func TestLocaleSelection(t *testing.T) {
	r := newRenderer(t)
	for in, want := range map[string]string{
		"pt": "pt-BR", "pt-BR": "pt-BR", "pt_BR": "pt-BR", "PT-br": "pt-BR", "pt_BR.UTF-8": "pt-BR", "pt-PT": "pt-BR",
		"en": "en", "en-US": "en", "en_GB": "en", "EN": "en",
		"": "pt-BR", "fr": "pt-BR", "xx-YY": "pt-BR",
	} {
		assert.Equal(t, want, r.ResolveLocale(in), in)
	}
	en, err := notify.NewRenderer(notify.Config{FrontendURL: "https://x.example", DefaultLocale: "en_US"})
	require.NoError(t, err)
	n := notify.SampleNotification(billing.NotificationKindExpiring, "en")
	n.To.Locale = "de-DE"
	m, err := en.RenderNotification(n)
	require.NoError(t, err)
	assert.Equal(t, "en", m.Locale)
	assert.Equal(t, "Your subscription expires in 3 days", m.Subject)
}

func TestFormatMoney(t *testing.T) {
	cases := []struct {
		m      billing.Money
		locale string
		want   string
	}{
		{billing.Money{Amount: 4990, Currency: "BRL"}, "pt-BR", "R$ 49,90"},
		{billing.Money{Amount: 4990, Currency: "USD"}, "en", "$49.90"},
		{billing.Money{Amount: 4990, Currency: "BRL"}, "en", "R$49.90"},
		{billing.Money{Amount: 4990, Currency: "USD"}, "pt-BR", "US$ 49,90"},
		{billing.Money{Amount: 123456789, Currency: "BRL"}, "pt", "R$ 1.234.567,89"},
		{billing.Money{Amount: 123456789, Currency: "usd"}, "en-US", "$1,234,567.89"},
		{billing.Money{Amount: 5, Currency: "EUR"}, "en", "€0.05"},
		{billing.Money{Amount: 1000, Currency: "EUR"}, "pt-BR", "€ 10,00"},
		{billing.Money{Amount: 1500, Currency: "JPY"}, "en", "¥1,500"},
		{billing.Money{Amount: 990, Currency: "CHF"}, "en", "CHF 9.90"},
		{billing.Money{Amount: 1500, Currency: "CLP"}, "pt-BR", "CLP 1.500"}, // ISO code, no decimals
		{billing.Money{Amount: 0, Currency: "BRL"}, "pt-BR", "R$ 0,00"},
		{billing.Money{Amount: -4990, Currency: "USD"}, "en", "-$49.90"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, notify.FormatMoney(c.m, c.locale), "%+v %s", c.m, c.locale)
	}
}

func TestDatesInRecipientZone(t *testing.T) {
	// 02:30 UTC on the 18th is still the 17th in São Paulo (UTC-3).
	ts := time.Date(2026, 3, 18, 2, 30, 0, 0, time.UTC)
	sp, err := time.LoadLocation("America/Sao_Paulo")
	require.NoError(t, err)
	assert.Equal(t, "17/03/2026", notify.FormatDate(ts, sp, "pt-BR"))
	assert.Equal(t, "17 de março de 2026", notify.FormatLongDate(ts, sp, "pt-BR"))
	assert.Equal(t, "17/03/2026 23:30 (-03)", notify.FormatDateTime(ts, sp, "pt-BR"))
	assert.Equal(t, "March 18, 2026", notify.FormatDate(ts, time.UTC, "en"))
	assert.Equal(t, "", notify.FormatDate(time.Time{}, sp, "en"))

	r := newRenderer(t)
	d := notify.SampleData(billing.NotificationKindExpiring, "pt-BR")
	d.PeriodEnd = ts
	m, err := r.Render(billing.NotificationKindExpiring, "pt-BR", d)
	require.NoError(t, err)
	assert.Contains(t, m.Text, "Vencimento: 17/03/2026")
	d.TimeZone = "Asia/Tokyo"
	m, err = r.Render(billing.NotificationKindExpiring, "pt-BR", d)
	require.NoError(t, err)
	assert.Contains(t, m.Text, "Vencimento: 18/03/2026")
	d.TimeZone = "Not/AZone" // falls back to the default (UTC)
	m, err = r.Render(billing.NotificationKindExpiring, "pt-BR", d)
	require.NoError(t, err)
	assert.Contains(t, m.Text, "Vencimento: 18/03/2026")
}

func TestLinksAndBranding(t *testing.T) {
	r, err := notify.NewRenderer(notify.Config{
		FrontendURL: "https://app.example.com/",
		AdminURL:    "https://ops.example.com/jobs",
		Paths:       notify.Paths{Renew: "/renovar?src=email"},
		ProductName: "ZapSaaS",
		Theme:       notify.Theme{Primary: "#ff0066"},
	})
	require.NoError(t, err)
	m, err := r.Render(billing.NotificationKindExpiring, "pt-BR", notify.SampleData(billing.NotificationKindExpiring, "pt-BR"))
	require.NoError(t, err)
	assert.Contains(t, m.Text, "https://app.example.com/renovar?src=email&subscription=sub_8f3a2c")
	assert.Contains(t, m.HTML, `href="https://app.example.com/renovar?src=email&amp;subscription=sub_8f3a2c"`)
	assert.Contains(t, m.HTML, "#ff0066")
	assert.Contains(t, m.Text, "ZapSaaS")
	assert.NotContains(t, m.Text, "Dúvidas?", "no support address configured")

	m, err = r.Render(billing.NotificationKindOperatorAlert, "en", notify.SampleData(billing.NotificationKindOperatorAlert, "en"))
	require.NoError(t, err)
	assert.Contains(t, m.Text, "https://ops.example.com/jobs/renew_subscriptions?run=run_20260318_0200")
	assert.Equal(t, "[ZapSaaS] Job renew_subscriptions failed 3 times in a row", m.Subject)
}

func TestHTMLEscapesData(t *testing.T) {
	r := newRenderer(t)
	d := notify.SampleData(billing.NotificationKindWelcome, "en")
	d.Name = `<script>alert(1)</script>`
	d.PlanName = `"Pro" & <b>`
	m, err := r.Render(billing.NotificationKindWelcome, "en", d)
	require.NoError(t, err)
	assert.NotContains(t, m.HTML, "<script>")
	assert.Contains(t, m.HTML, "&lt;script&gt;")
	assert.Contains(t, m.Text, `"Pro" & <b>`, "the text part is not HTML-escaped")
}

func TestConfigValidate(t *testing.T) {
	err := notify.Config{}.Validate()
	require.Error(t, err)
	assert.ErrorIs(t, err, notify.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "missing FrontendURL")

	err = notify.Config{FrontendURL: "app.example.com", AdminURL: "ftp://x", DefaultLocale: "fr",
		DefaultTimeZone: "Mars/Olympus", Theme: notify.Theme{Primary: "red;}"}, Paths: notify.Paths{Renew: "renew"},
		SupportEmail: "nope"}.Validate()
	require.Error(t, err)
	for _, want := range []string{"FrontendURL", "AdminURL", "DefaultLocale", "DefaultTimeZone", "Theme.Primary",
		"Paths.Renew", "SupportEmail"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = notify.NewRenderer(notify.Config{})
	assert.ErrorIs(t, err, notify.ErrInvalidConfig)
}

func TestUnknownKindIsUndeliverable(t *testing.T) {
	r := newRenderer(t)
	_, err := r.Render("sms_promo", "en", notify.Data{})
	assert.ErrorIs(t, err, notify.ErrUnknownKind)
	assert.ErrorIs(t, err, billing.ErrUndeliverable)
}

func TestTemplateOverrides(t *testing.T) {
	const custom = `{{define "subject"}}Renova aí, {{.Name}}{{end}}
{{define "text"}}Corre: {{.RenewURL}}{{end}}
{{define "html"}}<p>Corre: <a href="{{.RenewURL}}">renovar</a></p>{{end}}`
	r, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com",
		Templates: fstest.MapFS{"pt-BR/expiring.tmpl": {Data: []byte(custom)}}})
	require.NoError(t, err)
	m, err := r.Render(billing.NotificationKindExpiring, "pt-BR", notify.SampleData(billing.NotificationKindExpiring, "pt-BR"))
	require.NoError(t, err)
	assert.Equal(t, "Renova aí, João Silva", m.Subject)
	assert.Equal(t, "Corre: https://app.example.com/billing/renew?subscription=sub_8f3a2c\n", m.Text)
	assert.Contains(t, m.HTML, `<p>Corre: <a href="https://app.example.com/billing/renew?subscription=sub_8f3a2c">renovar</a></p>`)
	assert.Contains(t, m.HTML, "<!DOCTYPE html>", "the embedded layout still wraps it")
	// Other kinds and locales keep the embedded templates.
	m, err = r.Render(billing.NotificationKindExpiring, "en", notify.SampleData(billing.NotificationKindExpiring, "en"))
	require.NoError(t, err)
	assert.Equal(t, "Your subscription expires in 3 days", m.Subject)

	// A layout override.
	r, err = notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com",
		Templates: fstest.MapFS{"layout.html.tmpl": {Data: []byte(`<html><body>{{template "html" .}}</body></html>`)}}})
	require.NoError(t, err)
	m, err = r.Render(billing.NotificationKindWelcome, "en", notify.SampleData(billing.NotificationKindWelcome, "en"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(m.HTML, "<html><body>"))
}

func TestBrokenOverridesFailAtConstruction(t *testing.T) {
	for name, files := range map[string]fstest.MapFS{
		"parse error":   {"en/welcome.tmpl": {Data: []byte(`{{define "subject"}}{{.Name{{end}}`)}},
		"missing field": {"en/welcome.tmpl": {Data: []byte(`{{define "subject"}}{{.Nome}}{{end}}{{define "text"}}x{{end}}{{define "html"}}x{{end}}`)}},
		"missing block": {"pt-BR/renewed.tmpl": {Data: []byte(`{{define "subject"}}x{{end}}{{define "text"}}x{{end}}`)}},
		"bad layout":    {"layout.html.tmpl": {Data: []byte(`{{template "html" .}}{{.Missing}}`)}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com", Templates: files})
			require.Error(t, err)
			assert.ErrorIs(t, err, notify.ErrTemplate)
		})
	}
}
