package pgstore_test

import (
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/storetest"
)

// TestConformance runs the store contract suite on PostgreSQL, each subtest on a schema of
// its own, with storetest's default (full) data sizes.
func TestConformance(t *testing.T) {
	p := pool(t)
	storetest.Run(t, func(t *testing.T) billing.Store { return newStore(t, p) })
}
