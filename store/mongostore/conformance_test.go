package mongostore_test

import (
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/storetest"
)

func TestConformance(t *testing.T) {
	c := client(t)
	storetest.RunWithOptions(t, func(t *testing.T) billing.Store {
		return newStore(t, freshDB(t, c), testConfig)
	}, storetest.Options{ClaimRecords: 200, StaleRecords: 100, Goroutines: 4})
}
