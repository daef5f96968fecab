package paypalgw

import (
	"fmt"
	"math"
	"strings"

	"github.com/renewkit/renewkit/billing"
)

// zeroDecimal lists the currencies PayPal quotes without minor units.
var zeroDecimal = map[string]bool{"HUF": true, "JPY": true, "TWD": true}

// ParseAmount converts PayPal's decimal string ("14.55") in currency to minor units, exactly:
// no floating point, at most the currency's decimals (extra trailing zeros are accepted:
// "822.0100" CZK is 82201), no sign, no exponent, no spaces. The currency is upper-cased.
func ParseAmount(value, currency string) (billing.Money, error) {
	cur := strings.ToUpper(currency)
	if len(cur) != 3 || strings.Trim(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return billing.Money{}, fmt.Errorf("%w: currency %q is not an ISO 4217 code", ErrInvalidAmount, currency)
	}
	decimals := 2
	if zeroDecimal[cur] {
		decimals = 0
	}
	whole, frac, hasDot := strings.Cut(value, ".")
	if whole == "" || (hasDot && frac == "") || len(value) > 40 {
		return billing.Money{}, fmt.Errorf("%w: %q is not a decimal amount", ErrInvalidAmount, value)
	}
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if !digits(whole) || !digits(frac) {
		return billing.Money{}, fmt.Errorf("%w: %q is not a decimal amount", ErrInvalidAmount, value)
	}
	if len(frac) > decimals {
		if strings.Trim(frac[decimals:], "0") != "" {
			return billing.Money{}, fmt.Errorf("%w: %q has more than %d decimals for %s", ErrInvalidAmount, value, decimals, cur)
		}
		frac = frac[:decimals]
	}
	frac += strings.Repeat("0", decimals-len(frac))
	var n int64
	for _, c := range whole + frac {
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return billing.Money{}, fmt.Errorf("%w: %q overflows", ErrInvalidAmount, value)
		}
		n = n*10 + d
	}
	return billing.Money{Amount: n, Currency: cur}, nil
}
