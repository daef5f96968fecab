package billing_test

import (
	"testing"

	"github.com/renewkit/renewkit/billing"
)

// TestListsAreFreshCopies proves that a caller who changes a list billing returns cannot
// change it for anyone else: every call returns a new slice with the same contents.
func TestListsAreFreshCopies(t *testing.T) {
	k := billing.AllNotificationKinds()
	k[0] = "changed"
	if billing.AllNotificationKinds()[0] != billing.NotificationKindExpiring {
		t.Errorf("AllNotificationKinds()[0] = %q after a caller changed its copy", billing.AllNotificationKinds()[0])
	}
	s := billing.AllWebhookEventStates()
	s[0] = "changed"
	if billing.AllWebhookEventStates()[0] != billing.WebhookEventStateReceived {
		t.Errorf("AllWebhookEventStates()[0] = %q after a caller changed its copy", billing.AllWebhookEventStates()[0])
	}
	j := billing.RerunJobIDs()
	j[0] = "changed"
	if billing.RerunJobIDs()[0] != billing.JobCheckExpiring {
		t.Errorf("RerunJobIDs()[0] = %q after a caller changed its copy", billing.RerunJobIDs()[0])
	}
	c := billing.AllCancellationSources()
	c[0] = "changed"
	if billing.AllCancellationSources()[0] != "user" {
		t.Errorf("AllCancellationSources()[0] = %q after a caller changed its copy", billing.AllCancellationSources()[0])
	}
	if len(billing.AllNotificationKinds()) != 9 || len(billing.AllWebhookEventStates()) != 6 {
		t.Errorf("lists lost entries: %d kinds, %d states", len(billing.AllNotificationKinds()), len(billing.AllWebhookEventStates()))
	}
}
