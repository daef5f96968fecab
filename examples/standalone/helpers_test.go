package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// envFunc returns a getenv reading only m: the test's environment never leaks in.
func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// freePort returns a 127.0.0.1 port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// server is the standalone server running in-process.
type server struct {
	t      *testing.T
	app    *app
	base   string // http://127.0.0.1:port
	outbox string
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan int // receives serve's exit code
}

// startServer runs serve in-process on 127.0.0.1 with env (plus HTTP_ADDR and OUTBOX_DIR
// unless set) and edit applied to the parsed config. It stops the server at cleanup.
func startServer(t *testing.T, env map[string]string, edit func(*Config)) *server {
	t.Helper()
	all := map[string]string{"HTTP_ADDR": "127.0.0.1:0", "OUTBOX_DIR": filepath.Join(t.TempDir(), "outbox")}
	for k, v := range env {
		all[k] = v
	}
	cfg, err := loadConfig(nil, envFunc(all), io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if edit != nil {
		edit(cfg)
	}
	served := make(chan *app, 1)
	cfg.onServe = func(a *app) { served <- a }
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, outbox: cfg.OutboxDir, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- serve(ctx, cfg, s.stdout, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(cfg.shutdownGrace() + 10*time.Second):
			t.Errorf("server did not stop")
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.stderr.String())
		}
	})
	select {
	case s.app = <-served:
	case code := <-s.done:
		s.done <- code
		t.Fatalf("server exited with %d before serving:\n%s", code, s.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start:\n%s", s.stderr.String())
	}
	for _, line := range strings.Split(s.stdout.String(), "\n") {
		if addr, ok := strings.CutPrefix(line, "listening on "); ok {
			s.base = strings.TrimSpace(addr)
		}
	}
	if s.base == "" {
		t.Fatalf("no listening line in stdout:\n%s", s.stdout.String())
	}
	return s
}

// stop cancels the server's context and returns serve's exit code.
func (s *server) stop(within time.Duration) int {
	s.t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code // for cleanup
		return code
	case <-time.After(within):
		s.t.Fatalf("server did not stop within %s", within)
		return -1
	}
}

// do sends a request with the admin token (when auth) and returns status and body.
func (s *server) do(method, path string, body io.Reader, auth bool) (int, []byte) {
	s.t.Helper()
	return do(s.t, method, s.base+path, s.app.token, body, auth)
}

func do(t *testing.T, method, url, token string, body io.Reader, auth bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// artifactDir is where tests save screenshots: $RENEWKIT_ARTIFACTS when set, else a temp
// dir removed after the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("RENEWKIT_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}
