package mongostore

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
)

// Money in documents
//
// A plan's price and a payment's amount are stored as one number (field price or amount)
// next to a currency field. moneyCodec reads and writes them as Config.Money and
// Config.DefaultCurrency say.

// moneyCodec converts between stored numbers and billing.Money.
type moneyCodec struct {
	format          MoneyFormat
	defaultCurrency string
}

func (c Config) money() moneyCodec {
	return moneyCodec{format: c.Money, defaultCurrency: c.DefaultCurrency}
}

// zeroExponent and threeExponent list the ISO 4217 currencies whose minor unit is not a
// hundredth: 0 and 3 decimal digits. Every other currency has 2.
var minorExponents = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// minorExponent is the number of decimal digits of cur's minor unit: 2 but for the
// currencies listed above (JPY 0, KWD 3, ...).
func minorExponent(cur string) int {
	if e, ok := minorExponents[cur]; ok {
		return e
	}
	return 2
}

// currency returns the stored currency, or the default for an empty one.
func (m moneyCodec) currency(stored string) string {
	if stored == "" {
		return m.defaultCurrency
	}
	return stored
}

// read decodes a stored price or amount v (missing or null reads as 0) with the stored
// currency.
func (m moneyCodec) read(field string, v bson.RawValue, storedCurrency string) (billing.Money, error) {
	cur := m.currency(storedCurrency)
	n, err := m.minor(v, minorExponent(cur))
	if err != nil {
		return billing.Money{}, fmt.Errorf("%s: %w", field, err)
	}
	return billing.Money{Amount: n, Currency: cur}, nil
}

// minor converts a stored number to minor units, exp being the currency's minor-unit
// exponent.
func (m moneyCodec) minor(v bson.RawValue, exp int) (int64, error) {
	scale := 0 // the power of ten turning a stored unit into minor units
	if m.format == MoneyMajorUnits {
		scale = exp
	}
	var digits *big.Int
	var e10 int // the stored value is digits × 10^e10
	switch v.Type {
	case 0, bson.TypeNull, bson.TypeUndefined:
		return 0, nil
	case bson.TypeInt32, bson.TypeInt64:
		digits, e10 = big.NewInt(v.AsInt64()), 0
	case bson.TypeDouble:
		x := v.Double()
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%v is not an amount", x)
		}
		// The shortest decimal that reads back as x is what the writer meant: 49.9 (stored
		// as 49.89999999999999857891452847979962825775146484375) is 49.9, and
		// 0.30000000000000004 (0.1 + 0.2) is itself, nearest to 0.30.
		digits, e10 = shortestDecimal(x)
	case bson.TypeDecimal128:
		d := v.Decimal128()
		var err error
		if digits, e10, err = d.BigInt(); err != nil {
			return 0, fmt.Errorf("decimal %s is not an amount: %w", d, err)
		}
	default:
		return 0, fmt.Errorf("BSON type %s, want a number (int32, int64, double or decimal128)", v.Type)
	}
	n, exact, err := scaleRound(digits, e10+scale)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s: %w", v, err)
	case !exact && m.format == MoneyMinorUnits:
		return 0, fmt.Errorf("%s is not a whole number of minor units (cents); if the application stores major units (49.9 for 49.90), set mongostore.Config.Money to MoneyMajorUnits", v)
	}
	return n, nil
}

// shortestDecimal returns x as digits × 10^e10, with the fewest digits that read back as x.
func shortestDecimal(x float64) (*big.Int, int) {
	s := strconv.FormatFloat(x, 'e', -1, 64) // "-4.99e+01"
	mant, exp, _ := strings.Cut(s, "e")
	e10, _ := strconv.Atoi(exp)
	whole, frac, _ := strings.Cut(mant, ".")
	digits, _ := new(big.Int).SetString(whole+frac, 10)
	return digits, e10 - len(frac)
}

var errAmountRange = errors.New("amount out of range of int64 minor units")

// scaleRound returns digits × 10^e10 rounded half away from zero to an integer, and whether
// that was exact.
func scaleRound(digits *big.Int, e10 int) (n int64, exact bool, err error) {
	if digits.Sign() == 0 {
		return 0, true, nil
	}
	q := new(big.Int).Set(digits)
	exact = true
	switch {
	case e10 > 19:
		return 0, false, errAmountRange
	case e10 > 0:
		q.Mul(q, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e10)), nil))
	case e10 < 0:
		if e10 < -400 { // far below half a minor unit
			return 0, false, nil
		}
		div := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-e10)), nil)
		neg := q.Sign() < 0
		q.Abs(q)
		r := new(big.Int)
		q.QuoRem(q, div, r)
		exact = r.Sign() == 0
		if r.Lsh(r, 1).Cmp(div) >= 0 {
			q.Add(q, big.NewInt(1))
		}
		if neg {
			q.Neg(q)
		}
	}
	if !q.IsInt64() {
		return 0, false, errAmountRange
	}
	return q.Int64(), exact, nil
}

// majorFloat is the double nearest to minor/10^exp: 4990 → 49.9, as float("49.90") in
// Python.
func majorFloat(minor int64, exp int) float64 {
	if exp == 0 {
		return float64(minor)
	}
	s := strconv.FormatInt(minor, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if len(s) <= exp {
		s = strings.Repeat("0", exp-len(s)+1) + s
	}
	s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	if neg {
		s = "-" + s
	}
	x, _ := strconv.ParseFloat(s, 64)
	return x
}

// write returns the stored number for minor units of cur: int64 minor units, or a double
// of major units.
func (m moneyCodec) write(minor int64, cur string) any {
	if m.format == MoneyMajorUnits {
		return majorFloat(minor, minorExponent(m.currency(cur)))
	}
	return minor
}

// match returns a condition that the stored number reads as minor units of cur: in major
// units, every stored value that rounds to it (so 49.9, 49.90000000001 and NumberDecimal
// "49.90" all match 4990), else the number itself. Zero also matches a missing or null field.
func (m moneyCodec) match(minor int64, cur string) any {
	if minor == 0 {
		return bson.D{{Key: "$in", Value: bson.A{int64(0), nil}}}
	}
	if m.format != MoneyMajorUnits {
		return minor
	}
	exp := minorExponent(m.currency(cur))
	unit := math.Pow10(exp)
	lo, hi := (float64(minor)-0.5)/unit, (float64(minor)+0.5)/unit
	if minor > 0 { // half away from zero: [m-0.5, m+0.5)
		return bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}
	}
	return bson.D{{Key: "$gt", Value: lo}, {Key: "$lte", Value: hi}}
}

// amountValue is what a money field's get returns in a fieldSet: encode and match ask the
// codec.
type amountValue struct {
	minor    int64
	currency string
	codec    moneyCodec
}

// currencyValue is a currency field's value in a fieldSet: the default currency also
// matches a document without one.
type currencyValue struct {
	currency string
	codec    moneyCodec
}

func (v currencyValue) match() any {
	switch {
	case v.currency == "":
		return bson.D{{Key: "$in", Value: bson.A{"", nil}}}
	case v.currency == v.codec.defaultCurrency:
		return bson.D{{Key: "$in", Value: bson.A{v.currency, "", nil}}}
	}
	return v.currency
}
