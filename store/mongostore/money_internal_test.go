package mongostore

import (
	"math"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func rawOf(t *testing.T, x any) bson.RawValue {
	t.Helper()
	typ, b, err := bson.MarshalValue(x)
	if err != nil {
		t.Fatal(err)
	}
	return bson.RawValue{Type: typ, Value: b}
}

func dec(t *testing.T, s string) bson.Decimal128 {
	t.Helper()
	d, err := bson.ParseDecimal128(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestMoneyRounding proves that stored numbers become the nearest minor unit: major-unit
// doubles are read as the decimal their writer meant (49.9 is 4990, not 4989), float noise
// (0.1+0.2, ±1e-9) rounds away, halves round away from zero, the currency's exponent is
// used (JPY 0, KWD 3), and in minor-unit mode a fractional value is an error, never
// truncated.
func TestMoneyRounding(t *testing.T) {
	major := moneyCodec{format: MoneyMajorUnits}
	minor := moneyCodec{format: MoneyMinorUnits}
	for _, c := range []struct {
		name  string
		codec moneyCodec
		v     any
		exp   int
		want  int64
		fails bool
	}{
		{"49.9", major, 49.9, 2, 4990, false},
		{"0.1+0.2", major, 0.1 + 0.2, 2, 30, false},
		{"19.99", major, 19.99, 2, 1999, false},
		{"19.99+1e-9", major, 19.99 + 1e-9, 2, 1999, false},
		{"19.99-1e-9", major, 19.99 - 1e-9, 2, 1999, false},
		{"49.9*3", major, 49.9 * 3, 2, 14970, false}, // 149.70000000000002
		{"29.0", major, 29.0, 2, 2900, false},
		{"1.005 half away from zero", major, 1.005, 2, 101, false},
		{"0.125 half away from zero", major, 0.125, 2, 13, false},
		{"-49.9", major, -49.9, 2, -4990, false},
		{"-0.125", major, -0.125, 2, -13, false},
		{"1e-9", major, 1e-9, 2, 0, false},
		{"int32 29", major, int32(29), 2, 2900, false},
		{"int64 29", major, int64(29), 2, 2900, false},
		{"JPY 500.4", major, 500.4, 0, 500, false},
		{"KWD 1.2345", major, 1.2345, 3, 1235, false},
		{"decimal 49.90", major, dec(t, "49.90"), 2, 4990, false},
		{"decimal 49.905", major, dec(t, "49.905"), 2, 4991, false},
		{"NaN", major, math.NaN(), 2, 0, true},
		{"1e30", major, 1e30, 2, 0, true},
		{"string", major, "49.9", 2, 0, true},
		{"minor int32", minor, int32(4990), 2, 4990, false},
		{"minor int64", minor, int64(4990), 2, 4990, false},
		{"minor 4990.0", minor, 4990.0, 2, 4990, false},
		{"minor decimal 4990.00", minor, dec(t, "4990.00"), 2, 4990, false},
		{"minor 49.9 is malformed", minor, 49.9, 2, 0, true},
		{"minor 4990+1e-9 is malformed", minor, 4990 + 1e-9, 2, 0, true},
		{"minor decimal 49.9 is malformed", minor, dec(t, "49.9"), 2, 0, true},
	} {
		got, err := c.codec.minor(rawOf(t, c.v), c.exp)
		switch {
		case c.fails && err == nil:
			t.Errorf("%s: read as %d, want an error", c.name, got)
		case !c.fails && (err != nil || got != c.want):
			t.Errorf("%s: read as %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if got, err := major.minor(bson.RawValue{}, 2); err != nil || got != 0 {
		t.Errorf("missing field: %d, %v; want 0", got, err)
	}
}

// TestMoneyWriteRoundTrip proves that what major-unit mode writes is the double the host's
// float("49.90") would hold, reads back as the same minor units, and is matched by the
// write condition for that amount (and its neighbours are not).
func TestMoneyWriteRoundTrip(t *testing.T) {
	m := moneyCodec{format: MoneyMajorUnits, defaultCurrency: "BRL"}
	if x := m.write(4990, ""); x != 49.9 {
		t.Fatalf("write(4990) = %v, want 49.9", x)
	}
	if x := m.write(500, "JPY"); x != 500.0 {
		t.Fatalf("write(500 JPY) = %v, want 500", x)
	}
	if x := (moneyCodec{}).write(4990, "BRL"); x != int64(4990) {
		t.Fatalf("minor-unit write(4990) = %v (%T), want int64 4990", x, x)
	}
	for _, n := range []int64{1, 5, 99, 100, 1999, 4990, 123456789, -4990} {
		x := m.write(n, "BRL")
		got, err := m.minor(rawOf(t, x), 2)
		if err != nil || got != n {
			t.Errorf("%d written as %v reads as %d, %v", n, x, got, err)
		}
		cond := bson.D{{Key: "amount", Value: m.match(n, "BRL")}}
		for _, stored := range []struct {
			v    any
			want bool
		}{{x, true}, {x.(float64) + 1e-9, true}, {m.write(n+1, "BRL"), false}, {m.write(n-1, "BRL"), false}} {
			doc, _ := bson.Marshal(bson.D{{Key: "amount", Value: stored.v}})
			if matches(doc, cond) != stored.want {
				t.Errorf("condition for %d on stored %v: %v, want %v", n, stored.v, !stored.want, stored.want)
			}
		}
	}
	if minorExponent("JPY") != 0 || minorExponent("KWD") != 3 || minorExponent("BRL") != 2 || minorExponent("") != 2 {
		t.Fatal("minorExponent")
	}
}
