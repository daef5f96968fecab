package mongostore_test

import (
	"strings"
	"testing"

	"github.com/renewkit/renewkit/store/mongostore"
)

func TestConfigValidate(t *testing.T) {
	if err := (mongostore.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	err := mongostore.Config{BatchSize: -1, ClaimMode: 9, Collections: mongostore.Collections{Users: "subscriptions", Plans: "a$b"}}.Validate()
	if err == nil {
		t.Fatal("bad Config validated")
	}
	for _, want := range []string{"BatchSize", "ClaimMode", "Collections.Subscriptions", "Collections.Plans"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := mongostore.New(nil, mongostore.Config{}); err == nil || !strings.Contains(err.Error(), "missing database") {
		t.Fatalf("New(nil): %v", err)
	}
}
