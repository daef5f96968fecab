package billing

import "testing"

// TestDetailKeepsTextWithoutAllocating proves that detail stores every status and kind as
// its plain string (what the stores and the console read back), and that the ones the
// jobs write on every record are boxed without an allocation.
func TestDetailKeepsTextWithoutAllocating(t *testing.T) {
	for _, s := range []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusInactive, "paused_by_host"} {
		if v, ok := detail(s).(string); !ok || v != string(s) {
			t.Errorf("detail(%q) = %#v, want the string %q", s, detail(s), s)
		}
	}
	if v, ok := detail(NotificationKindExpiring).(string); !ok || v != string(NotificationKindExpiring) {
		t.Errorf("detail(%q) = %#v", NotificationKindExpiring, detail(NotificationKindExpiring))
	}
	status := SubscriptionStatus([]byte("inactive")) // not a constant: boxing it would allocate
	var sink any
	if n := testing.AllocsPerRun(100, func() { sink = detail(status) }); n != 0 {
		t.Errorf("detail of a known status allocated %.0f times, want 0", n)
	}
	_ = sink
}
