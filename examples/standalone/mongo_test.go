package main

import (
	"context"
	"net/http"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/internal/testkit"
)

// TestServerOnMongoDB runs the server on MONGODB_URI (FerretDB in CI) with the demo data:
// indexes are created, the demo documents are written in the seed's shape, a triggered job
// works through mongostore, /readyz pings the database, and the run history is kept there.
func TestServerOnMongoDB(t *testing.T) {
	uri := testkit.MongoURI(t)
	db := testkit.DBName("rk_standalone")
	t.Cleanup(func() { // after the server stopped: drop the test database
		c, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err == nil {
			_ = c.Database(db).Drop(context.Background())
			_ = c.Disconnect(context.Background())
		}
	})
	s := startServer(t, map[string]string{"MONGODB_URI": uri, "MONGODB_DB": db, "DEMO_DATA": "true",
		"ENABLE_SCHEDULER": "false"}, nil)
	code, body := s.do(http.MethodGet, "/readyz", nil, false)
	if code != http.StatusOK {
		t.Fatalf("/readyz on MongoDB: %d %s", code, body)
	}
	code, body = s.do(http.MethodPost, "/api/admin/jobs/check_expiring_subscriptions/trigger", nil, true)
	if code != http.StatusOK {
		t.Fatalf("trigger: %d %s", code, body)
	}
	run := decode[struct {
		Status string         `json:"status"`
		Result map[string]any `json:"result"`
	}](t, body)
	if run.Status != "succeeded" || run.Result["notifications_sent"] != float64(4) {
		t.Fatalf("run on MongoDB: %+v, want succeeded with the 4 demo warnings", run)
	}
	code, body = s.do(http.MethodGet, "/api/admin/jobs/check_expiring_subscriptions", nil, true)
	got := decode[struct {
		Runs []struct{ Status string } `json:"runs"`
	}](t, body)
	if code != http.StatusOK || len(got.Runs) != 1 {
		t.Fatalf("history on MongoDB: %d %s", code, body)
	}
	// A second trigger finds the warnings recorded in MongoDB and sends nothing.
	_, body = s.do(http.MethodPost, "/api/admin/jobs/check_expiring_subscriptions/trigger", nil, true)
	again := decode[struct {
		Result map[string]any `json:"result"`
	}](t, body)
	if again.Result["notifications_sent"] != float64(0) {
		t.Fatalf("second run sent %v, want 0", again.Result["notifications_sent"])
	}
}
