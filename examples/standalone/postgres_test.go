package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/pgtest"
)

// TestServerOnPostgres runs the server on DATABASE_URL (the scripts/postgres server in CI)
// with the demo data: it migrates on start and says so, each of the five jobs runs through
// pgstore, the console's API answers from it, and after a restart the run history is still
// there, in the admin API and on the dashboard.
func TestServerOnPostgres(t *testing.T) {
	uri, schema := pgtest.Schema(t, "rk_standalone") // dropped after the servers stopped
	env := map[string]string{"DATABASE_URL": uri, "DATABASE_SCHEMA": schema, "DEMO_DATA": "true",
		"ENABLE_SCHEDULER": "false", "ADMIN_TOKEN": "pg-admin-token-0123456789"}
	s := startServer(t, env, nil)
	if out := s.stderr.String() + s.stdout.String(); !strings.Contains(out, "migrat") {
		t.Errorf("the server did not say it migrated the schema:\n%s", out)
	}
	if code, body := s.do(http.MethodGet, "/readyz", nil, false); code != http.StatusOK {
		t.Fatalf("/readyz on PostgreSQL: %d %s", code, body)
	}
	checkConsoleAPI(t, s) // pgstore implements billing.Console
	jobs := []string{billing.JobCheckExpiring, billing.JobProcessExpired, billing.JobRenew, billing.JobCleanupSessions, billing.JobCleanupPayments}
	for _, job := range jobs {
		code, body := s.do(http.MethodPost, "/api/admin/jobs/"+job+"/trigger", nil, true)
		run := decode[struct {
			Status string `json:"status"`
		}](t, body)
		if code != http.StatusOK || run.Status != "succeeded" {
			t.Fatalf("trigger %s on PostgreSQL: %d %s", job, code, body)
		}
	}
	if code := s.stop(time.Minute); code != 0 {
		t.Fatalf("server exited with %d", code)
	}

	env["DEMO_DATA"] = "false"
	s = startServer(t, env, nil)
	for _, job := range jobs {
		code, body := s.do(http.MethodGet, "/api/admin/jobs/"+job, nil, true)
		got := decode[struct {
			Runs []struct{ Status string } `json:"runs"`
		}](t, body)
		if code != http.StatusOK || len(got.Runs) != 1 || got.Runs[0].Status != "succeeded" {
			t.Fatalf("history of %s after a restart: %d %s", job, code, body)
		}
		code, page := s.do(http.MethodGet, "/admin/jobs/"+job, nil, true)
		if code != http.StatusOK || !strings.Contains(string(page), "succeeded") {
			t.Fatalf("dashboard page of %s after a restart: %d, no succeeded run shown", job, code)
		}
	}
	// The warnings recorded before the restart are not sent again.
	_, body := s.do(http.MethodPost, "/api/admin/jobs/"+billing.JobCheckExpiring+"/trigger", nil, true)
	again := decode[struct {
		Result map[string]any `json:"result"`
	}](t, body)
	if again.Result["notifications_sent"] != float64(0) {
		t.Fatalf("warning run after the restart sent %v, want 0", again.Result["notifications_sent"])
	}
}
