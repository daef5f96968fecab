package billingtest_test

import (
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/billing/billingtest"
	"github.com/renewkit/renewkit/store/memstore"
)

// ExampleRun is the engine suite of a store adapter, next to its storetest conformance
// test. An adapter writes it as a Test function.
func ExampleRun() {
	testEngine := func(t *testing.T) {
		billingtest.Run(t, func(t *testing.T) billing.Store { return memstore.New() })
	}
	_ = testEngine
}
