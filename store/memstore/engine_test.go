package memstore_test

import (
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/billing/billingtest"
	"github.com/renewkit/renewkit/store/memstore"
)

// TestEngine runs billing's jobs and processor on memstore (the engine suite).
func TestEngine(t *testing.T) {
	billingtest.Run(t, func(t *testing.T) billing.Store { return memstore.New() })
}
