package memstore

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// changedNames is what subFields and paymentFields say changed, in their order.
func changedNames[T any](fields []field[T], a, b *T) []string {
	var out []string
	for _, f := range fields {
		if !f.same(a, b) {
			out = append(out, f.name)
		}
	}
	return out
}

// mutate sets v to a value other than its zero value.
func mutate(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2031, 1, 2, 3, 4, 5, 6_000_000, time.UTC)))
	case v.Kind() == reflect.String:
		v.SetString("x")
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		v.SetInt(7)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		v.Set(reflect.ValueOf([]string{"x"}).Convert(v.Type()))
	default:
		t.Fatalf("%s: no mutation for %s; teach this test the new field", path, v.Type())
	}
}

// checkFields changes every leaf field of T but skip, one at a time, and checks that fields
// report exactly what billing's function reports, and that set copies the change.
func checkFields[T any](t *testing.T, fields []field[T], changed func(a, b T) []string, skip ...string) {
	t.Helper()
	var paths []string // leaf fields: Amount.Currency, not Amount
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			sf := t.Field(i)
			p := prefix + sf.Name
			switch {
			case slices.Contains(skip, p):
			case sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[time.Time]():
				walk(sf.Type, p+".")
			default:
				paths = append(paths, p)
			}
		}
	}
	walk(reflect.TypeFor[T](), "")
	for _, path := range paths {
		var a, b T
		// Find the same field in b by path and change it there.
		fv := reflect.ValueOf(&b).Elem()
		for _, name := range strings.Split(path, ".") {
			fv = fv.FieldByName(name)
		}
		mutate(t, fv, path)
		want := changed(a, b)
		if got := changedNames(fields, &a, &b); !slices.Equal(got, want) {
			t.Fatalf("changing %s: memstore writes %v, billing reports %v", path, got, want)
		}
		if len(want) == 0 {
			continue // not a written field (billing never reports it)
		}
		dst := a
		apply(fields, &dst, &a, &b)
		if got := changed(dst, b); len(got) != 0 {
			t.Fatalf("changing %s: after apply the record still differs in %v", path, got)
		}
		if ok, writes := writable(fields, &a, &a, &b); !ok || !writes {
			t.Fatalf("changing %s: writable(stored = read) = %v, %v; want true, true", path, ok, writes)
		}
		if ok, _ := writable(fields, &b, &a, &b); ok {
			t.Fatalf("changing %s: writable with the field changed in the store meanwhile = true; want false", path)
		}
	}
}

// TestSubscriptionFieldsMatchBilling keeps subFields in step with
// billing.ChangedSubscriptionFields.
func TestSubscriptionFieldsMatchBilling(t *testing.T) {
	checkFields(t, subFields, billing.ChangedSubscriptionFields, "ID", "Pending", "Version")
}

// TestPaymentFieldsMatchBilling keeps paymentFields in step with
// billing.ChangedPaymentFields.
func TestPaymentFieldsMatchBilling(t *testing.T) {
	checkFields(t, paymentFields, billing.ChangedPaymentFields, "ID", "Pending", "Version")
}

// TestTimesComparedAtMillisecond: a sub-millisecond or zone difference is no change.
func TestTimesComparedAtMillisecond(t *testing.T) {
	at := time.Date(2030, 6, 15, 12, 0, 0, 123_456_789, time.UTC)
	a := billing.Subscription{CurrentPeriodEnd: at}
	b := billing.Subscription{CurrentPeriodEnd: at.Add(100 * time.Microsecond).In(time.FixedZone("BRT", -3*3600))}
	if got := changedNames(subFields, &a, &b); len(got) != 0 {
		t.Fatalf("sub-millisecond difference reported as a change of %v", got)
	}
}
