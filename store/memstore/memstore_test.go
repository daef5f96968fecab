package memstore_test

import (
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/memstore"
	"github.com/renewkit/renewkit/store/storetest"
)

// TestConformance proves memstore honours the whole billing.Store contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) billing.Store { return memstore.New() })
}
