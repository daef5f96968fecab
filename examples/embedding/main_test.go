package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/gateways/stripegw"
)

// TestEmbedding runs the embedding example on a free loopback port and checks the host's own
// route and renewkit's admin API behind the host's check live side by side on one mux, and
// that the example runs the inbox worker: a signed Stripe event it accepted ends ignored (a
// type renewkit does not act on), which only a worker does; without one it stays received.
func TestEmbedding(t *testing.T) {
	t.Setenv("MONGODB_URI", "")
	t.Setenv("SMTP_HOST", "")
	t.Setenv("STRIPE_SECRET_KEY", "")
	t.Setenv("STRIPE_WEBHOOK_SECRET", "whsec_embedding_test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, addr, "test-admin-token-123") }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	get := func(path, token string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				return resp
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", path, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if resp := get("/", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("host route: %d", resp.StatusCode)
	}
	if resp := get("/api/admin/jobs/", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin API without the host's check: %d, want 401", resp.StatusCode)
	}
	resp := get("/api/admin/jobs/", "test-admin-token-123")
	defer resp.Body.Close()
	var body struct {
		Total int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Total != 5 {
		t.Fatalf("admin API: %d %+v %v, want the five jobs", resp.StatusCode, body, err)
	}

	payload := []byte(`{"id":"evt_embed_1","object":"event","type":"customer.created","created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}}}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/payments/stripe/webhook", bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(stripegw.SignatureHeader, stripegw.SignPayload("whsec_embedding_test", payload, time.Now()))
	hook, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ack, _ := io.ReadAll(hook.Body)
	hook.Body.Close()
	if hook.StatusCode != http.StatusOK || !strings.Contains(string(ack), `"accepted"`) {
		t.Fatalf("webhook: %d %s, want 200 accepted", hook.StatusCode, ack)
	}
	var ev struct {
		State string `json:"state"`
	}
	for deadline := time.Now().Add(10 * time.Second); ev.State != "ignored"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("accepted event is %q after 10s, want ignored: no inbox worker applied it", ev.State)
		}
		r := get("/api/admin/inbox/events/stripe/evt_embed_1", "test-admin-token-123")
		err := json.NewDecoder(r.Body).Decode(&ev)
		r.Body.Close()
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("inbox admin API: %d %v", r.StatusCode, err)
		}
	}
}
