package stripegw

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

const (
	benchConns = 64  // concurrent connections
	benchSubs  = 256 // subscriptions renewed in turn
)

// BenchmarkWebhookLoopback posts Stripe-signed invoice.paid events over loopback, each with
// its own event and invoice id (so each is processed, not deduplicated), renewing a pool of
// subscriptions, from 64 concurrent connections: to the full handler on memstore, and to a
// bare handler that only reads the body, verifies the signature and answers 200. It reports
// events/s and p99 latency.
//
//	go test -run '^$' -bench WebhookLoopback -count 5 ./gateways/stripegw
func BenchmarkWebhookLoopback(b *testing.B) {
	b.Run("handler", func(b *testing.B) {
		st := memstore.New()
		svc, err := billing.NewService(st, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
			billing.Config{Clock: testkit.NewClock(fuzzNow), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		records := []any{testkit.Plan("pro", billing.CycleMonthly, 2990)}
		for i := range benchSubs {
			uid, sid := fmt.Sprintf("u%d", i), fmt.Sprintf("s%d", i)
			s := testkit.Subscription(sid, uid, "pro", fuzzNow.Add(time.Hour))
			s.Gateway, s.GatewaySubscriptionID = billing.GatewayStripe, fmt.Sprintf("sub_%d", i)
			records = append(records, testkit.UserWithAccess(uid, "pro", sid, s.CurrentPeriodEnd), s)
		}
		testkit.Seed(b, st, records...)
		h, err := NewWebhookHandler(svc, Config{WebhookSecret: "whsec_bench"}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			b.Fatal(err)
		}
		runLoopback(b, h)
	})
	b.Run("bare", func(b *testing.B) {
		clock := testkit.NewClock(fuzzNow)
		runLoopback(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := hookhttp.ReadBody(w, r, hookhttp.MaxBody)
			if !ok {
				return
			}
			if err := verifySignature(body, r.Header.Get(SignatureHeader), "whsec_bench", clock.Now(), DefaultTolerance); err != nil {
				hookhttp.Error(w, http.StatusBadRequest, signatureReason(err))
				return
			}
			hookhttp.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}))
	})
}

func runLoopback(b *testing.B, h http.Handler) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	defer srv.Close()
	tr := &http.Transport{MaxIdleConns: benchConns, MaxIdleConnsPerHost: benchConns, MaxConnsPerHost: benchConns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	bodies, headers := make([][]byte, b.N), make([]string, b.N)
	for i := range b.N {
		sub, k := i%benchSubs, i/benchSubs
		ps, pe := billing.AddMonths(fuzzNow, k), billing.AddMonths(fuzzNow, k+1)
		bodies[i] = []byte(fmt.Sprintf(`{"id":"evt_b%d","object":"event","type":"invoice.paid","created":%d,"api_version":"2023-10-16","data":{"object":{"id":"in_b%d","object":"invoice","status":"paid","paid":true,"subscription":"sub_%d","currency":"brl","amount_paid":2990,"amount_due":2990,"billing_reason":"subscription_cycle","lines":{"object":"list","data":[{"object":"line_item","type":"subscription","proration":false,"subscription":"sub_%d","period":{"start":%d,"end":%d}}]}}}}`,
			i, ps.Unix(), i, sub, sub, ps.Unix(), pe.Unix()))
		headers[i] = SignPayload("whsec_bench", bodies[i], fuzzNow)
	}
	lat := make([]time.Duration, b.N)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range benchConns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhook", bytes.NewReader(bodies[i]))
				req.Header.Set(SignatureHeader, headers[i])
				req.Header.Set("Content-Type", "application/json")
				t := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat[i] = time.Since(t)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr.Load())
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[(len(lat)*99)/100])/float64(time.Millisecond), "p99-ms")
}
