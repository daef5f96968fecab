package hookhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
	"github.com/renewkit/renewkit/store/memstore"
)

func TestReadBody(t *testing.T) {
	for _, tc := range []struct {
		name, method, body string
		limit              int64
		ok                 bool
		code               int
	}{
		{"post within limit", http.MethodPost, "{}", 10, true, 0},
		{"get refused", http.MethodGet, "", 10, false, http.StatusMethodNotAllowed},
		{"over limit", http.MethodPost, strings.Repeat("x", 11), 10, false, http.StatusRequestEntityTooLarge},
		{"default limit is 1 MiB", http.MethodPost, strings.Repeat("x", MaxBody+1), 0, false, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			body, ok := ReadBody(rec, httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body)), tc.limit)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && string(body) != tc.body {
				t.Fatalf("body %q", body)
			}
			if !ok && (rec.Code != tc.code || !strings.Contains(rec.Body.String(), `"error"`)) {
				t.Fatalf("answer %d %s, want %d with a JSON error", rec.Code, rec.Body, tc.code)
			}
		})
	}
}

// TestReadJSONBody proves a webhook body is read only when it is declared JSON: any other
// or missing Content-Type is answered 415 with a JSON error and the body is not read, while
// charset and other parameters are allowed.
func TestReadJSONBody(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		ok   bool
		code int
	}{
		{"application/json", true, 0},
		{"application/json; charset=utf-8", true, 0},
		{"Application/JSON;charset=UTF-8", true, 0},
		{"", false, http.StatusUnsupportedMediaType},
		{"text/plain", false, http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", false, http.StatusUnsupportedMediaType},
		{"application/json-patch+json", false, http.StatusUnsupportedMediaType},
		{"application/jsonx", false, http.StatusUnsupportedMediaType},
		{"application/json; charset", false, http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			body := &countingReader{r: strings.NewReader(`{"id":"evt_1"}`)}
			req := httptest.NewRequest(http.MethodPost, "/", body)
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			rec := httptest.NewRecorder()
			got, ok := ReadJSONBody(rec, req, 0)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v (%d %s)", ok, tc.ok, rec.Code, rec.Body)
			}
			if ok && string(got) != `{"id":"evt_1"}` {
				t.Fatalf("body %q", got)
			}
			if !ok {
				if rec.Code != tc.code || !strings.Contains(rec.Body.String(), `"error"`) ||
					!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
					t.Fatalf("answer %d %s, want %d with a JSON error", rec.Code, rec.Body, tc.code)
				}
				if body.n != 0 {
					t.Fatalf("%d bytes of the body read before the content type was refused", body.n)
				}
			}
		})
	}
	rec := httptest.NewRecorder()
	if _, ok := ReadJSONBody(rec, httptest.NewRequest(http.MethodGet, "/", nil), 0); ok || rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d, want 405 before the content type", rec.Code)
	}
}

type countingReader struct {
	r *strings.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestRespond(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		outcome billing.EventOutcome
		err     error
		code    int
	}{
		{billing.EventOutcomeProcessed, nil, 200},
		{billing.EventOutcomeDuplicate, nil, 200},
		{billing.EventOutcomeIgnored, nil, 200},
		{billing.EventOutcomeInProgress, nil, 409},
		{billing.EventOutcomeFailed, fmt.Errorf("x: %w", billing.ErrUnknownPayment), 400},
		{billing.EventOutcomeFailed, fmt.Errorf("x: %w", billing.ErrNotFound), 503},
		{billing.EventOutcomeFailed, fmt.Errorf("x: %w", billing.ErrConflict), 503},
		{billing.EventOutcomeFailed, fmt.Errorf("api: %w", gateways.ErrUnavailable), 503},
		{billing.EventOutcomeFailed, errors.New("store down: secret=abc"), 500},
	} {
		rec := httptest.NewRecorder()
		Respond(rec, httptest.NewRequest("POST", "/", nil), log, "stripe", "evt_1", tc.outcome, tc.err)
		if rec.Code != tc.code {
			t.Errorf("%s %v: %d, want %d", tc.outcome, tc.err, rec.Code, tc.code)
		}
		if rec.Header().Get(OutcomeHeader) != string(tc.outcome) {
			t.Errorf("%s: outcome header %q", tc.outcome, rec.Header().Get(OutcomeHeader))
		}
		if strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("error text leaked into the answer: %s", rec.Body)
		}
	}
}

func TestDefaults(t *testing.T) {
	log, clock := Defaults(nil, nil, nil)
	if log == nil || clock == nil {
		t.Fatalf("without a core: log %v, clock %v; want slog.Default() and the system clock", log, clock)
	}
	svc, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Logger: slog.New(slog.DiscardHandler), Clock: billing.SystemClock()})
	if err != nil {
		t.Fatal(err)
	}
	core := svc.Processor()
	if log, clock := Defaults(core, nil, nil); log != core.Logger() || clock != core.Clock() {
		t.Fatalf("with a core: log %v clock %v, want the core's", log, clock)
	}
	own := slog.New(slog.NewTextHandler(io.Discard, nil))
	if log, _ := Defaults(core, own, nil); log != own {
		t.Fatalf("a configured logger was replaced: %v", log)
	}
}

func TestJSONProblem(t *testing.T) {
	var v struct{ A struct{ B int } }
	for in, want := range map[string]string{
		`{"a":`:                  "invalid JSON at byte 5",
		`{"a":{"b":"secret"}}`:   `field "A.B" has the wrong type`,
		`{"a":{"b":1}} trailing`: "invalid JSON at byte 15",
	} {
		if got := JSONProblem(json.Unmarshal([]byte(in), &v)); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
	if got := JSONProblem(errors.New("secret")); got != "invalid JSON" {
		t.Errorf("other error: %q", got)
	}
}

// Proves: the body read does not rely on the declared length: a body of unknown length, or
// one longer or shorter than it declares, is read whole within the limit and refused (413)
// over it.
func TestReadBodyDeclaredLength(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		declared int64
		code     int
	}{
		{"unknown length within limit", strings.Repeat("a", 900), -1, 0},
		{"unknown length over limit", strings.Repeat("a", 1001), -1, http.StatusRequestEntityTooLarge},
		{"declared shorter than sent", strings.Repeat("b", 800), 10, 0},
		{"declared longer than sent", "{}", 900, 0},
		{"declared shorter, sent over limit", strings.Repeat("c", 1500), 10, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			req.ContentLength = tc.declared
			rec := httptest.NewRecorder()
			body, ok := ReadBody(rec, req, 1000)
			if tc.code == 0 && (!ok || string(body) != tc.body) {
				t.Fatalf("ok=%v, %d bytes read of %d (answer %d)", ok, len(body), len(tc.body), rec.Code)
			}
			if tc.code != 0 && (ok || rec.Code != tc.code) {
				t.Fatalf("ok=%v, answer %d, want %d", ok, rec.Code, tc.code)
			}
		})
	}
}
