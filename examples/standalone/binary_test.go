package main

import (
	"bufio"
	"fmt"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

var binDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "renewkit-standalone-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// standaloneBinary builds the server once per test run, with -race when the tests run with
// it (its packages are then in the build cache already).
func standaloneBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "standalone")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Proves the first "Done when" of issue 7: the built binary with no configuration (only
// HTTP_ADDR, PATH and HOME) runs on embedded defaults, prints a working admin token, serves
// the five jobs in the seed's shape behind auth, and its check_expiring_subscriptions run
// writes the warning .eml files for the demo subscriptions ending within 3 days, in each
// user's locale. SIGTERM stops it with exit code 0.
func TestBinaryOnEmbeddedDefaults(t *testing.T) {
	bin := standaloneBinary(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{"HTTP_ADDR=" + addr, "PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait() // after stdout is drained, as StdoutPipe requires
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})

	var token, base string
	timeout := time.After(60 * time.Second)
	for token == "" || base == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("server exited before printing token and address")
			}
			if v, ok := strings.CutPrefix(line, "admin token: "); ok {
				token = v
			}
			if v, ok := strings.CutPrefix(line, "listening on "); ok {
				base = v
			}
		case <-timeout:
			t.Fatalf("no token and address on stdout within 60s")
		}
	}
	if base != "http://"+addr {
		t.Fatalf("listening on %q, want http://%s", base, addr)
	}
	if len(token) < 32 {
		t.Fatalf("printed token %q is too short", token)
	}
	if strings.Contains(stderr.String(), token) {
		t.Fatal("the admin token was logged to stderr")
	}

	// The five jobs, the seed's JSON shape, behind the token.
	code, body := do(t, http.MethodGet, base+"/api/admin/jobs", token, nil, true)
	if code != http.StatusOK {
		t.Fatalf("GET /api/admin/jobs: %d %s", code, body)
	}
	list := decode[struct {
		Total int              `json:"total"`
		Jobs  []map[string]any `json:"jobs"`
	}](t, body)
	var ids []string
	for _, j := range list.Jobs {
		for _, k := range []string{"id", "name", "next_run", "trigger", "paused", "last_run"} {
			if _, ok := j[k]; !ok {
				t.Errorf("job %v has no %q key", j["id"], k)
			}
		}
		ids = append(ids, j["id"].(string))
	}
	want := []string{billing.JobCheckExpiring, billing.JobProcessExpired, billing.JobRenew, billing.JobCleanupSessions, billing.JobCleanupPayments}
	if list.Total != 5 || !slices.Equal(ids, want) {
		t.Fatalf("total %d, jobs %v; want 5: %v", list.Total, ids, want)
	}
	for _, p := range []string{"/api/admin/jobs", "/api/admin/jobs/", "/api/admin/jobs/" + billing.JobCheckExpiring} {
		if code, body := do(t, http.MethodGet, base+p, "", nil, false); code != http.StatusUnauthorized {
			t.Errorf("GET %s without token: %d %s, want 401", p, code, body)
		}
	}
	if code, _ := do(t, http.MethodGet, base+"/api/admin/jobs", "not-the-token", nil, true); code != http.StatusUnauthorized {
		t.Errorf("GET /api/admin/jobs with a wrong token: %d, want 401", code)
	}

	// Trigger the warning job: one .eml per demo subscription ending within 3 days.
	code, body = do(t, http.MethodPost, base+"/api/admin/jobs/"+billing.JobCheckExpiring+"/trigger", token, nil, true)
	if code != http.StatusOK {
		t.Fatalf("trigger: %d %s", code, body)
	}
	run := decode[billing.JobRun](t, body)
	if run.Status != billing.RunStatusSucceeded || run.Result["notifications_sent"] != float64(4) {
		t.Fatalf("run %+v, want succeeded with 4 notifications", run)
	}
	got := readOutbox(t, filepath.Join(dir, "outbox"))
	wantMail := map[string]struct{ kind, subject string }{
		"joao@example.com":  {"expiring", "Sua assinatura expira em "},
		"maria@example.com": {"expiring", "Sua assinatura expira em "},
		"alice@example.com": {"expiring", "Your subscription expires in "},
		"bruno@example.com": {"renewal_upcoming", "Sua assinatura será renovada em "},
	}
	if len(got) != len(wantMail) {
		t.Errorf("outbox holds %d messages, want %d: %v", len(got), len(wantMail), got)
	}
	for to, w := range wantMail {
		m, ok := got[to]
		if !ok {
			t.Errorf("no message to %s", to)
			continue
		}
		if !strings.Contains(m.file, "_"+w.kind+"_") {
			t.Errorf("message to %s is %s, want kind %s", to, m.file, w.kind)
		}
		if !strings.HasPrefix(m.subject, w.subject) {
			t.Errorf("subject to %s = %q, want prefix %q", to, m.subject, w.subject)
		}
	}

	// SIGTERM: graceful stop, exit code 0, well within the grace period.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(shutdownGrace):
		t.Fatalf("still running %s after SIGTERM", shutdownGrace)
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("no stop line in the log")
	}
}

type outboxMail struct{ file, subject string }

// readOutbox parses every .eml in dir with net/mail, by To address.
func readOutbox(t *testing.T, dir string) map[string]outboxMail {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]outboxMail{}
	dec := new(mime.WordDecoder)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(fh)
		if err != nil {
			fh.Close()
			t.Fatalf("%s: %v", f, err)
		}
		to, err := msg.Header.AddressList("To")
		if err != nil || len(to) != 1 {
			t.Fatalf("%s: To %v: %v", f, to, err)
		}
		subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			t.Fatalf("%s: subject: %v", f, err)
		}
		fh.Close()
		if prev, dup := out[to[0].Address]; dup {
			t.Errorf("two messages to %s: %s and %s", to[0].Address, prev.file, filepath.Base(f))
		}
		out[to[0].Address] = outboxMail{file: filepath.Base(f), subject: subject}
	}
	return out
}
