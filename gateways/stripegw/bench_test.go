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
// subscriptions, from 64 concurrent connections: to the handler processing inline on
// memstore ("inline"), and ("inbox") to a bare handler that only reads the body, verifies
// the signature and answers 200, then, in the same iteration, to the default handler that
// accepts into the inbox while an InboxWorker applies the events. It reports events/s and
// p99 latency of each, the acknowledgement throughput as a fraction of the bare handler's,
// the end-to-end processed events/s and the median time from acknowledgement to applied.
//
//	go test -run '^$' -bench WebhookLoopback -count 5 ./gateways/stripegw
func BenchmarkWebhookLoopback(b *testing.B) {
	b.Run("inline", func(b *testing.B) {
		_, h := benchHandler(b, true)
		r := runLoopback(b, h)
		b.ReportMetric(r.rate, "events/s")
		b.ReportMetric(r.p99ms, "p99-ms")
	})
	b.Run("inbox", func(b *testing.B) {
		bare := runLoopback(b, bareHandler())
		// Acknowledgement alone: a handler whose events no worker applies meanwhile.
		_, quiet := benchHandler(b, false)
		only := runLoopback(b, quiet)
		svc, h := benchHandler(b, false)
		w, err := billing.NewInboxWorker(svc)
		if err != nil {
			b.Fatal(err)
		}
		applied := make([]time.Time, b.N)
		var done atomic.Int64
		all := make(chan struct{})
		w.Observe = func(ev billing.WebhookEvent, a billing.WebhookAttempt) {
			var i int
			if _, err := fmt.Sscanf(ev.EventID, "evt_b%d", &i); err != nil || a.State != billing.WebhookEventStateProcessed {
				return
			}
			applied[i] = time.Now()
			if done.Add(1) == int64(b.N) {
				close(all)
			}
		}
		if err := w.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = w.Shutdown(context.Background()) }()
		acc := runLoopback(b, h)
		select {
		case <-all:
		case <-time.After(2 * time.Minute):
			b.Fatalf("%d of %d accepted events processed", done.Load(), b.N)
		}
		last := slices.MaxFunc(applied, func(x, y time.Time) int { return x.Compare(y) })
		delays := make([]time.Duration, b.N)
		for i := range b.N {
			delays[i] = applied[i].Sub(acc.acked[i])
		}
		slices.Sort(delays)
		b.ReportMetric(bare.rate, "bare-events/s")
		b.ReportMetric(bare.p99ms, "bare-p99-ms")
		b.ReportMetric(only.rate/bare.rate, "ack-only/bare")
		b.ReportMetric(only.p99ms/bare.p99ms, "ack-only-p99/bare-p99")
		b.ReportMetric(acc.rate, "ack-events/s")
		b.ReportMetric(acc.p99ms, "ack-p99-ms")
		b.ReportMetric(acc.rate/bare.rate, "ack/bare")
		b.ReportMetric(acc.p99ms/bare.p99ms, "ack-p99/bare-p99")
		b.ReportMetric(float64(b.N)/last.Sub(acc.start).Seconds(), "processed-events/s")
		b.ReportMetric(float64(delays[len(delays)/2])/float64(time.Millisecond), "ack-to-applied-p50-ms")
	})
}

// benchHandler is the Stripe handler on memstore with benchSubs subscriptions to renew.
func benchHandler(b *testing.B, inline bool) (*billing.Service, http.Handler) {
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
	h, err := NewWebhookHandler(svc.Processor(), Config{WebhookSecret: "whsec_bench", ProcessInline: inline, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return svc, h
}

// bareHandler reads the body, verifies the signature and answers 200: the floor.
func bareHandler() http.Handler {
	clock := testkit.NewClock(fuzzNow)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := hookhttp.ReadBody(w, r, hookhttp.MaxBody)
		if !ok {
			return
		}
		if err := verifySignature(body, r.Header.Get(SignatureHeader), "whsec_bench", clock.Now(), DefaultTolerance); err != nil {
			hookhttp.Error(w, http.StatusBadRequest, signatureReason(err))
			return
		}
		hookhttp.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// benchBody is the i-th event the loopback benchmark posts: an invoice.paid renewing
// subscription i%benchSubs for its (i/benchSubs+1)-th month.
func benchBody(i int) []byte {
	sub, k := i%benchSubs, i/benchSubs
	ps, pe := billing.AddMonths(fuzzNow, k), billing.AddMonths(fuzzNow, k+1)
	return []byte(fmt.Sprintf(`{"id":"evt_b%d","object":"event","type":"invoice.paid","created":%d,"api_version":"2023-10-16","data":{"object":{"id":"in_b%d","object":"invoice","status":"paid","paid":true,"subscription":"sub_%d","currency":"brl","amount_paid":2990,"amount_due":2990,"billing_reason":"subscription_cycle","lines":{"object":"list","data":[{"object":"line_item","type":"subscription","proration":false,"subscription":"sub_%d","period":{"start":%d,"end":%d}}]}}}}`,
		i, ps.Unix(), i, sub, sub, ps.Unix(), pe.Unix()))
}

type loopbackResult struct {
	rate, p99ms float64
	start       time.Time
	acked       []time.Time // when each request's answer was read
}

func runLoopback(b *testing.B, h http.Handler) loopbackResult {
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
		bodies[i] = benchBody(i)
		headers[i] = SignPayload("whsec_bench", bodies[i], fuzzNow)
	}
	lat := make([]time.Duration, b.N)
	acked := make([]time.Time, b.N)
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
				acked[i] = time.Now()
				lat[i] = acked[i].Sub(t)
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
	b.StartTimer()
	return loopbackResult{rate: float64(b.N) / elapsed.Seconds(), p99ms: float64(lat[(len(lat)*99)/100]) / float64(time.Millisecond),
		start: start, acked: acked}
}

// BenchmarkDecode compares what the acknowledgement decodes of the benchmark's
// invoice.paid (the envelope, scanned, and with encoding/json as the scan's fallback does)
// with what the worker decodes (the whole event).
//
//	go test -run '^$' -bench Decode -count 5 ./gateways/stripegw
func BenchmarkDecode(b *testing.B) {
	body := benchBody(0)
	b.Run("envelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEnvelope(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("envelope-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEnvelopeJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEvent(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHandler serves the loopback benchmark's requests in process (no network), one
// at a time: to the bare handler and to the accepting handler (no worker), so their
// difference is what the acknowledgement costs on top of reading and verifying.
//
//	go test -run '^$' -bench 'Handler$' -count 5 ./gateways/stripegw
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct {
		name string
		h    func() http.Handler
	}{
		{"bare", bareHandler},
		{"accept", func() http.Handler { _, h := benchHandler(b, false); return h }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.h()
			bodies, headers := make([][]byte, b.N), make([]string, b.N)
			for i := range b.N {
				bodies[i] = benchBody(i)
				headers[i] = SignPayload("whsec_bench", bodies[i], fuzzNow)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(bodies[i]))
				req.Header.Set(SignatureHeader, headers[i])
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkInboxDrain accepts the loopback benchmark's events in process (untimed), then
// times an InboxWorker draining them: the worker's cost per event, without the network and
// without handlers competing for the CPU.
//
//	go test -run '^$' -bench InboxDrain -count 5 ./gateways/stripegw
func BenchmarkInboxDrain(b *testing.B) {
	svc, h := benchHandler(b, false)
	for i := range b.N {
		body := benchBody(i)
		req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		req.Header.Set(SignatureHeader, SignPayload("whsec_bench", body, fuzzNow))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n, err := w.Drain(context.Background())
	b.StopTimer()
	if err != nil || n != b.N {
		b.Fatalf("drained %d of %d: %v", n, b.N, err)
	}
}
