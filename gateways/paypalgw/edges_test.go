package paypalgw

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Proves: a PAYPAL-CERT-URL on an allowlisted host but off PayPal's documented certificate
// path (/v1/notifications/certs/<name>, no query or fragment) is rejected with 400 before any
// request is made, although the server would serve the real certificate there.
func TestCertURLMustHaveDocumentedPath(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	for _, path := range []string{"/evil", "/v1/notifications/certs/", "/v1/notifications/certs/CERT-1/more",
		"/v1/notifications/certs/CERT-1?x=1", "/v1/notifications/certs/CERT-1#f", "/v1/notifications/certs/../../oauth2/token",
		"/v1/notifications/certs/CERT%2F1", "/V1/NOTIFICATIONS/CERTS/CERT-1"} {
		t.Run(path, func(t *testing.T) {
			e := newEnv(t, now, nil)
			body := activated(t, "WH-PATH", now)
			u := e.signer.ServerURL + path
			rec := e.post(body, e.signer.SignWith(body, now, testWebhookID, u))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", rec.Code, rec.Body)
			}
			e.assertUntouched("WH-PATH")
			if n := e.signer.CertRequests(); n != 0 {
				t.Errorf("certificate server saw %d requests, want none", n)
			}
		})
	}
}

// Proves: a signing certificate that chains to a trusted root but does not name PayPal's
// message-verification host in its SAN is rejected (400, nothing stored), so a certificate
// issued for another purpose by the same CA cannot sign webhooks.
func TestCertificateSANMustBeMessageVerificationHost(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	other, err := NewTestSigner(testWebhookID, TestSignerOptions{NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		DNSNames: []string{"www.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cfg := other.Config()
	cfg.CertSANs = e.signer.Config().CertSANs // the name the handler expects, not the one other carries
	h, err := NewWebhookHandler(e.svc.Processor(), withLogger(cfg, quiet))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	body := activated(t, "WH-SAN", now)
	if rec := e.post(body, other.Sign(body, now)); rec.Code != http.StatusBadRequest {
		t.Fatalf("got %d %s, want 400", rec.Code, rec.Body)
	}
	e.assertUntouched("WH-SAN")
	if CertSANs()[0] != "messageverificationcerts.paypal.com" || CertSANs()[1] != "messageverificationcerts.sandbox.paypal.com" {
		t.Errorf("CertSANs() = %q", CertSANs())
	}
}

// certServer serves PEM or errors on an allowlisted TLS host, counting requests and the
// most that were in flight at once.
type certServer struct {
	*httptest.Server
	requests, inflight, maxInflight atomic.Int64
	handle                          func(w http.ResponseWriter, r *http.Request)
}

func newCertServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *certServer {
	s := &certServer{handle: handle}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		n := s.inflight.Add(1)
		defer s.inflight.Add(-1)
		for {
			m := s.maxInflight.Load()
			if n <= m || s.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		s.handle(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (e *env) useCertServer(t *testing.T, s *certServer, mutate func(*Config)) {
	cfg := e.signer.Config()
	cfg.HTTPClient, cfg.CertHostAllowlist = s.Client(), []string{s.Listener.Addr().String()}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewWebhookHandler(e.svc.Processor(), withLogger(cfg, quiet))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
}

// Proves: a certificate URL that failed is not fetched again for every delivery: repeated
// deliveries naming it within CertFailureTTL make one request in all (each answered 400,
// nothing stored); after the TTL it is tried again.
func TestCertFetchFailuresCached(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	s := newCertServer(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	e.useCertServer(t, s, nil)
	body := activated(t, "WH-NEG", now)
	u := s.URL + "/v1/notifications/certs/CERT-missing"
	for i := range 20 {
		if rec := e.post(body, e.signer.SignWith(body, e.clock.Now(), testWebhookID, u)); rec.Code != http.StatusBadRequest {
			t.Fatalf("delivery %d: got %d %s, want 400", i, rec.Code, rec.Body)
		}
	}
	if n := s.requests.Load(); n != 1 {
		t.Fatalf("certificate URL fetched %d times for 20 deliveries, want 1", n)
	}
	e.assertUntouched("WH-NEG")
	e.clock.Advance(DefaultCertFailureTTL + time.Second)
	e.post(body, e.signer.SignWith(body, e.clock.Now(), testWebhookID, u))
	if n := s.requests.Load(); n != 2 {
		t.Fatalf("after the failure TTL: %d fetches, want 2", n)
	}
}

// Proves: certificate downloads are globally bounded: deliveries naming many different
// certificate URLs at once never have more than CertFetchConcurrency downloads in flight.
func TestCertFetchConcurrencyBounded(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	s := newCertServer(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		http.NotFound(w, r)
	})
	e.useCertServer(t, s, func(c *Config) { c.CertFetchConcurrency = 2 })
	body := activated(t, "WH-CONC", now)
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			u := s.URL + "/v1/notifications/certs/CERT-" + itoa(int64(i))
			if rec := e.post(body, e.signer.SignWith(body, now, testWebhookID, u)); rec.Code == http.StatusOK {
				t.Errorf("delivery %d accepted", i)
			}
		})
	}
	wg.Wait()
	if m := s.maxInflight.Load(); m > 2 {
		t.Fatalf("%d certificate downloads in flight at once, want at most 2", m)
	}
	e.assertUntouched("WH-CONC")
}

// Proves: the certificate download runs in the delivery's context: when the request is
// cancelled (PayPal hung up), the download is abandoned at once, not left running for the
// HTTP timeout, and the delivery is answered 503 with nothing stored.
//
// The delivery is cancelled once the certificate server has the download in hand (a timeout
// on the delivery could end it before the download starts, under load), and the server never
// answers, so only the cancellation can end the download; the 10 s guard is under
// DefaultHTTPTimeout.
func TestCertFetchUsesRequestContext(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abandoned := make(chan struct{})
	var once sync.Once
	s := newCertServer(t, func(w http.ResponseWriter, r *http.Request) {
		cancel() // PayPal hangs up while the download is in flight
		select {
		case <-r.Context().Done():
			once.Do(func() { close(abandoned) })
		case <-time.After(10 * time.Second):
		}
		panic(http.ErrAbortHandler) // no answer: a response racing the hang-up could be used
	})
	e.useCertServer(t, s, nil)
	body := activated(t, "WH-CTX", now)
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/payments/paypal/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.signer.SignWith(body, now, testWebhookID, s.URL+"/v1/notifications/certs/CERT-slow") {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	served := make(chan struct{})
	go func() {
		defer close(served)
		e.h.ServeHTTP(rec, req)
	}()
	select {
	case <-abandoned:
	case <-time.After(10 * time.Second):
		t.Fatal("the certificate download outlived the cancelled delivery")
	}
	<-served
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("got %d %s, want 503", rec.Code, rec.Body)
	}
	if n := s.requests.Load(); n != 1 {
		t.Errorf("certificate server saw %d requests, want 1", n)
	}
	e.assertUntouched("WH-CTX")
}

// Proves: when the PayPal API answers 404 for the subscription an event names, the
// delivery is answered 200 "ignored" with a log line (a retry cannot make it exist), not
// 500, and nothing is created.
func TestAPINotFoundIgnored(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	api := newAPIServer(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, now, func(c *Config) { c.ClientID, c.ClientSecret, c.BaseURL = "client-id", "client-secret", api.URL })
	cfg := e.signer.Config()
	cfg.ClientID, cfg.ClientSecret, cfg.BaseURL = "client-id", "client-secret", api.URL
	h, err := NewWebhookHandler(e.svc.Processor(), withLogger(cfg, slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	body := bytes.ReplaceAll(activated(t, "WH-404", now), []byte(testSubID), []byte("I-UNKNOWN0000"))
	rec := e.deliver(body)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ignored"`) {
		t.Fatalf("got %d %s, want 200 ignored", rec.Code, rec.Body)
	}
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	if !strings.Contains(logged, "I-UNKNOWN0000") || !strings.Contains(logged, "not found") {
		t.Errorf("no log line names the missing subscription: %s", logged)
	}
	subs, _ := e.store.ListUserSubscriptions(context.Background(), testUser)
	if len(subs) != 0 || len(e.sortedEmails()) != 0 {
		t.Errorf("a 404 created %d subscriptions, %d emails", len(subs), len(e.sortedEmails()))
	}
	if ev, err := e.store.GetWebhookEvent(context.Background(), billing.GatewayPayPal, "WH-404"); err != nil || ev.State != billing.WebhookEventStateIgnored {
		t.Errorf("event %+v %v, want ignored", ev, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestCertListsAreFreshCopies proves that a caller who changes the default certificate
// lists cannot change them for other handlers: every call returns a new slice.
func TestCertListsAreFreshCopies(t *testing.T) {
	h := CertHosts()
	h[0] = "evil.example"
	if CertHosts()[0] != "api.paypal.com" {
		t.Errorf("CertHosts()[0] = %q after a caller changed its copy", CertHosts()[0])
	}
	s := CertSANs()
	s[0] = "evil.example"
	if CertSANs()[0] != "messageverificationcerts.paypal.com" {
		t.Errorf("CertSANs()[0] = %q after a caller changed its copy", CertSANs()[0])
	}
}
