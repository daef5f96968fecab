package notify

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// CanonicalLocale maps a recipient's locale spelling ("pt", "pt-BR", "pt_br", "en",
// "en-US", "en_GB", ...) to a supported locale ("pt-BR" or "en"). ok is false when the
// language is not supported (or s is empty).
func CanonicalLocale(s string) (locale string, ok bool) { return canonicalLocale(s) }

func canonicalLocale(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(strings.ReplaceAll(s, "_", "-")))
	lang, _, _ := strings.Cut(s, "-")
	if i := strings.IndexByte(lang, '.'); i >= 0 { // "pt_BR.UTF-8"
		lang = lang[:i]
	}
	switch lang {
	case "pt":
		return LocalePtBR, true
	case "en":
		return LocaleEn, true
	}
	return "", false
}

type currencyInfo struct {
	symbolEn, symbolPt string
	digits             int
}

// currencies are the symbols (en, pt-BR) and decimals of the currencies renewkit's
// gateways commonly charge in.
var currencies = map[string]currencyInfo{
	"BRL": {"R$", "R$", 2},
	"USD": {"$", "US$", 2},
	"EUR": {"€", "€", 2},
	"GBP": {"£", "£", 2},
	"MXN": {"MX$", "MX$", 2},
	"CAD": {"CA$", "CA$", 2},
	"AUD": {"A$", "AU$", 2},
	"JPY": {"¥", "JP¥", 0},
	"KRW": {"₩", "₩", 0},
}

// zeroDecimal are the currencies without minor units that have no symbol in currencies.
var zeroDecimal = []string{"CLP", "PYG", "ISK", "VND"}

// currency gives the symbols and decimals of code. Others than those in currencies are
// shown with their ISO code and two decimals (none for zeroDecimal).
func currency(code string) currencyInfo {
	if info, ok := currencies[code]; ok {
		return info
	}
	info := currencyInfo{code + " ", code, 2}
	if slices.Contains(zeroDecimal, code) {
		info.digits = 0
	}
	return info
}

// FormatMoney formats m for the locale: "R$ 1.234,56" in pt-BR, "$1,234.56" in en.
// Unknown currencies use their ISO code ("CHF 10.00").
func FormatMoney(m billing.Money, locale string) string {
	loc, ok := canonicalLocale(locale)
	if !ok {
		loc = LocaleEn
	}
	code := strings.ToUpper(m.Currency)
	info := currency(code)
	amount := m.Amount
	neg := amount < 0
	if neg {
		amount = -amount
	}
	thousands, decimal := ",", "."
	if loc == LocalePtBR {
		thousands, decimal = ".", ","
	}
	var unit, frac int64 = amount, 0
	if info.digits > 0 {
		p := int64(1)
		for range info.digits {
			p *= 10
		}
		unit, frac = amount/p, amount%p
	}
	num := groupThousands(strconv.FormatInt(unit, 10), thousands)
	if info.digits > 0 {
		f := strconv.FormatInt(frac, 10)
		num += decimal + strings.Repeat("0", info.digits-len(f)) + f
	}
	var out string
	if loc == LocalePtBR {
		out = info.symbolPt + " " + num
	} else {
		out = info.symbolEn + num
	}
	if neg {
		out = "-" + out
	}
	return out
}

func groupThousands(digits, sep string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	lead := len(digits) % 3
	if lead > 0 {
		b.WriteString(digits[:lead])
	}
	for i := lead; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

var ptMonths = [...]string{"janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho",
	"agosto", "setembro", "outubro", "novembro", "dezembro"}

// FormatDate formats t's calendar date in the zone loc for the locale:
// "15/03/2026" in pt-BR, "March 15, 2026" in en.
func FormatDate(t time.Time, loc *time.Location, locale string) string {
	return formatIn(t, loc, locale, func(t time.Time) string { return t.Format("02/01/2006") }, "January 2, 2006")
}

// FormatLongDate is the long form: "15 de março de 2026" in pt-BR, "March 15, 2026" in en.
func FormatLongDate(t time.Time, loc *time.Location, locale string) string {
	return formatIn(t, loc, locale, func(t time.Time) string {
		return strconv.Itoa(t.Day()) + " de " + ptMonths[t.Month()-1] + " de " + strconv.Itoa(t.Year())
	}, "January 2, 2006")
}

// FormatDateTime formats date and time with the zone abbreviation:
// "15/03/2026 14:30 (-03)" in pt-BR, "March 15, 2026 2:30 PM EDT" in en.
func FormatDateTime(t time.Time, loc *time.Location, locale string) string {
	return formatIn(t, loc, locale, func(t time.Time) string { return t.Format("02/01/2006 15:04 (MST)") },
		"January 2, 2006 3:04 PM MST")
}

// formatIn shows t in loc (when not nil) with pt for pt-BR and the layout en otherwise; a
// zero t is "".
func formatIn(t time.Time, loc *time.Location, locale string, pt func(time.Time) string, en string) string {
	if t.IsZero() {
		return ""
	}
	if loc != nil {
		t = t.In(loc)
	}
	if l, _ := canonicalLocale(locale); l == LocalePtBR {
		return pt(t)
	}
	return t.Format(en)
}
