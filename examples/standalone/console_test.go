package main

import (
	"net/http"
	"strings"
	"testing"
)

// The console's API is mounted beside the jobs API, behind the same token, and answers on
// the demo data.
func TestConsoleAPIMounted(t *testing.T) {
	checkConsoleAPI(t, startServer(t, nil, nil))
}

// checkConsoleAPI asks the console's API of a server started with the demo data, before
// any job ran, for each kind of list.
func checkConsoleAPI(t *testing.T, s *server) {
	t.Helper()
	for _, c := range []struct {
		path string
		auth bool
		code int
		want string
	}{
		{"/api/admin/subscriptions?q=rita%40", true, http.StatusOK, `"id":"sub_rita"`},
		{"/api/admin/subscriptions?q=rita%40", false, http.StatusUnauthorized, `"error"`},
		{"/api/admin/subscriptions/sub_rita/timeline", true, http.StatusOK, `"source":"notification"`},
		{"/api/admin/notifications?status=failed", true, http.StatusOK, `"subscription_id":"sub_rita"`},
		{"/api/admin/payments?status=approved", true, http.StatusOK, `"id":"pay_lucas_2"`},
		{"/api/admin/subscriptions/nope", true, http.StatusNotFound, `"error"`},
		{"/api/admin/nope", true, http.StatusNotFound, `"error"`},
		{"/api/admin/jobs", true, http.StatusOK, `"total":5`},
	} {
		code, body := s.do("GET", c.path, nil, c.auth)
		if code != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("GET %s (auth %v): %d %s; want %d with %s", c.path, c.auth, code, body, c.code, c.want)
		}
	}
}
