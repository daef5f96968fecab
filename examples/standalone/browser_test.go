package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// chromium finds Debian's chromium: $CHROME_PATH, else chromium on PATH. Missing, the
// test skips locally and fails under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testkit.Unavailable(t, "chromium not found: set CHROME_PATH or install Debian's chromium")
	return ""
}

// browser starts a headless chromium with a fresh profile and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab() // closes the browser and waits for its process
		cancelAlloc()
	})
	return ctx
}

// count returns how many elements match the CSS selector.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
	if err != nil {
		t.Fatalf("counting %s: %v", sel, err)
	}
	return n
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string { return strconv.Quote(s) }

// get runs a value action and fails the test on error.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// steps runs actions that return nothing and fails the test on error.
func steps(t *testing.T, ctx context.Context, what string, a ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, a...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshot saves a full-page PNG as a test artifact and logs where.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// Proves the dashboard works in a real browser (the second "Done when" of issue 7): /admin/
// sends a stranger to the login form, the printed token signs in, the overview lists the
// five jobs, "Run now" on check_expiring_subscriptions adds a succeeded run to that job's
// history, a paused job is still paused after a reload, and the overview and job page fit a
// 375px phone screen without horizontal scrolling. Screenshots are saved as artifacts.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, nil, nil)
	shots := artifactDir(t)
	job := billing.JobCheckExpiring
	row := `tr[data-job="` + job + `"]`

	type css = chromedp.CSS

	steps(t, ctx, "opening /admin/", chromedp.Navigate(s.base+"/admin/"), chromedp.WaitVisible(css(`#token`)))
	if loc := get(t, ctx, "location", chromedp.Location()); loc != s.base+"/admin/login" {
		t.Fatalf("a stranger landed on %s, want the login page", loc)
	}

	// A wrong token is refused with a message.
	steps(t, ctx, "wrong token",
		chromedp.SendKeys(css(`#token`), "not-the-admin-token"),
		chromedp.Click(css(`#signin`)),
		chromedp.WaitVisible(css(`[role=alert]`)))
	if alert := get(t, ctx, "alert", chromedp.Text(css(`[role=alert]`))); !strings.Contains(alert, "not valid") {
		t.Errorf("wrong-token message %q", alert)
	}

	// Sign in: the overview lists the five jobs.
	steps(t, ctx, "signing in",
		chromedp.SendKeys(css(`#token`), s.app.token),
		chromedp.Click(css(`#signin`)),
		chromedp.WaitVisible(css(`#jobs`)))
	if loc, n := get(t, ctx, "location", chromedp.Location()), count(t, ctx, `tr[data-job]`); loc != s.base+"/admin/" || n != 5 {
		t.Fatalf("after sign-in: at %s with %d jobs, want /admin/ with 5", loc, n)
	}

	// The job's history is empty; Run now from the overview; the history shows the run.
	steps(t, ctx, "job page", chromedp.Click(css(row+` td a`)), chromedp.WaitVisible(css(`#runs`)))
	if n := count(t, ctx, `#runs tr[data-run]`); n != 0 {
		t.Fatalf("%d runs before the trigger, want 0", n)
	}
	steps(t, ctx, "Run now",
		chromedp.Navigate(s.base+"/admin/"),
		chromedp.WaitVisible(css(`#jobs`)),
		chromedp.Click(css(row+` button[name=trigger]`)),
		chromedp.WaitVisible(css(`.flash`)))
	loc := get(t, ctx, "location", chromedp.Location())
	flash := get(t, ctx, "flash", chromedp.Text(css(`.flash`)))
	if !strings.HasPrefix(loc, s.base+"/admin/?") || !strings.Contains(flash, "Ran "+job+": succeeded") {
		t.Fatalf("after Run now: at %s, flash %q", loc, flash)
	}
	steps(t, ctx, "job page after the run", chromedp.Click(css(row+` td a`)), chromedp.WaitVisible(css(`#runs`)))
	runs := count(t, ctx, `#runs tr[data-run]`)
	status := get(t, ctx, "run status", chromedp.Text(css(`#runs tr[data-run] td[data-label=Status]`)))
	if runs != 1 || strings.TrimSpace(status) != "succeeded" {
		t.Fatalf("history has %d runs, status %q; want 1 succeeded", runs, status)
	}
	screenshot(t, ctx, shots, "dashboard-job.png")

	// Pause it; after a reload it is still paused, here and on the overview.
	steps(t, ctx, "pausing",
		chromedp.Click(css(`button[name=pause]`)),
		chromedp.WaitVisible(css(`#job[data-paused="true"]`)),
		chromedp.Reload(),
		chromedp.WaitVisible(css(`#job`)))
	paused := get(t, ctx, "data-paused", chromedp.AttributeValue(css(`#job`), "data-paused"))
	badge := get(t, ctx, "badge", chromedp.Text(css(`#job .badge.paused`)))
	if paused.Value != "true" || badge != "paused" {
		t.Fatalf("after reload: data-paused=%q badge %q", paused.Value, badge)
	}
	steps(t, ctx, "overview after pause", chromedp.Navigate(s.base+"/admin/"), chromedp.WaitVisible(css(`#jobs`)))
	if b, n := get(t, ctx, "overview badge", chromedp.Text(css(row+` .badge.paused`))), count(t, ctx, row+` button[name=resume]`); b != "paused" || n != 1 {
		t.Fatalf("overview row: badge %q, %d resume buttons", b, n)
	}
	if j, err := s.app.sched.Get(context.Background(), job); err != nil || !j.Paused {
		t.Fatalf("scheduler state %+v, %v: want paused", j, err)
	}
	if w := get(t, ctx, "scrollWidth", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 1280 {
		t.Errorf("overview at 1280px is %dpx wide: it scrolls sideways", w)
	}
	screenshot(t, ctx, shots, "dashboard-overview.png")

	// Phone width: no horizontal overflow on the overview and the job page.
	for _, page := range []struct{ path, wait, shot string }{
		{"/admin/", `#jobs`, "dashboard-overview-375.png"},
		{"/admin/jobs/" + job, `#runs`, "dashboard-job-375.png"},
	} {
		steps(t, ctx, page.path+" at 375px",
			chromedp.EmulateViewport(375, 812),
			chromedp.Navigate(s.base+page.path),
			chromedp.WaitVisible(css(page.wait)))
		scrollWidth := get(t, ctx, "scrollWidth", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		clientWidth := get(t, ctx, "clientWidth", chromedp.Evaluate[int](`document.documentElement.clientWidth`))
		if clientWidth > 380 || scrollWidth > 375+4 {
			t.Errorf("%s at 375px: scrollWidth %d, clientWidth %d: the page scrolls sideways", page.path, scrollWidth, clientWidth)
		}
		screenshot(t, ctx, shots, page.shot)
	}
}
