package storetest

import (
	"testing"
)

// The shared store is safe only if every subtest's ids are its own: scope gives each
// subtest a different prefix, keeps the order of the ids it scopes, and the helpers'
// defaults (sibling, unscoped) stay in the scope of the record they belong to.
func TestScopeKeepsSubtestsApartAndOrdered(t *testing.T) {
	var a, b func(string) string
	t.Run("A", func(t *testing.T) { a = scope(t) })
	t.Run("B", func(t *testing.T) { b = scope(t) })
	if a("s1") == b("s1") {
		t.Fatalf("two subtests got the same id %q", a("s1"))
	}
	for _, pair := range [][2]string{{"s1", "s2"}, {"s1", "s10"}, {"a", "a-b"}, {"", "x"}} {
		if !(a(pair[0]) < a(pair[1])) {
			t.Fatalf("scope reorders %q < %q: %q >= %q", pair[0], pair[1], a(pair[0]), a(pair[1]))
		}
	}
	id := a("s1")
	if got := sibling(id, "u1"); got != a("u1") {
		t.Fatalf("sibling(%q, u1) = %q, want %q", id, got, a("u1"))
	}
	if got := unscoped(id); got != "s1" {
		t.Fatalf("unscoped(%q) = %q, want s1", id, got)
	}
	for _, plain := range []string{"s1", "u1", "12345678", "deadbeefx.s1", "DEADBEEF.s1"} {
		if sibling(plain, "u1") != "u1" || unscoped(plain) != plain {
			t.Fatalf("an id made outside any scope (%q) was read as scoped", plain)
		}
	}
	if sub := newSub(id, base); sub.UserID != a("u1") || sub.PlanID != a("p1") {
		t.Fatalf("newSub(%q) defaults to user %q and plan %q, want them in its scope", id, sub.UserID, sub.PlanID)
	}
}
