package billing

import (
	"testing"
	"time"
)

// TestNotificationKeyFormat pins the send-once key format: stored keys from earlier
// releases must keep matching, or their emails would be sent again.
func TestNotificationKeyFormat(t *testing.T) {
	at := time.UnixMilli(1767225600123).UTC()
	for _, c := range []struct {
		got, want string
	}{
		{notificationKey(NotificationKindExpiring, "s1", at, 3), "expiring:s1:1767225600123:3"},
		{notificationKey(NotificationKindExpired, "s1", at), "expired:s1:1767225600123"},
		{notificationKey(NotificationKindRenewed, "sub-x", time.Time{}), "renewed:sub-x"},
		{notificationKey(NotificationKindExpiring, "s1", at, 7, -1), "expiring:s1:1767225600123:7:-1"},
		{notificationKey(NotificationKindExpiring, "s1", time.UnixMilli(-5).UTC()), "expiring:s1:-5"},
	} {
		if c.got != c.want {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
	}
}
