package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/renewkit/renewkit/billing"
)

// noOverflow fails the test when the page is wider than the viewport.
func noOverflow(t *testing.T, ctx context.Context, what string, width int) {
	t.Helper()
	scrollWidth := get(t, ctx, "scrollWidth", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if scrollWidth > width+4 {
		t.Errorf("%s at %dpx is %dpx wide: it scrolls sideways", what, width, scrollWidth)
	}
}

// Proves the operations console in a real browser on the demo data (issue 15): an
// operator signs in with a name, searches a demo subscriber, opens her timeline with the
// warning email and the expiry, reads the email that was sent, resends the one that failed
// (audited under the operator's name), sees the webhook that renewed another subscriber on
// his timeline, replays a failed webhook from the inbox and sees the worker process it
// (audited too), watches a background run's progress bar reach 100%
// without a reload and sees the job's charts and the overview's; every page fits 1280px
// and 375px without horizontal scrolling. Screenshots are saved as artifacts.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, nil, nil)
	shots := artifactDir(t)
	type css = chromedp.CSS

	steps(t, ctx, "signing in",
		chromedp.Navigate(s.base+"/admin/login"),
		chromedp.WaitVisible(css(`#token`)),
		chromedp.SendKeys(css(`#token`), s.app.token),
		chromedp.SendKeys(css(`#operator`), "Ana Operadora"),
		chromedp.Click(css(`#signin`)),
		chromedp.WaitVisible(css(`#jobs`)))

	// Search the demo subscriber by part of her email and open her page.
	steps(t, ctx, "searching",
		chromedp.Click(css(`#nav-subscriptions`)),
		chromedp.WaitVisible(css(`#q`)),
		chromedp.SetValue(css(`#q`), "rita@"),
		chromedp.Click(css(`#search`)),
		// The results page renders the query back; the unfiltered page lists Rita too.
		chromedp.WaitVisible(css(`#q[value="rita@"]`)))
	if n, rita := count(t, ctx, `#subs tr[data-sub]`), count(t, ctx, `#subs tr[data-sub="sub_rita"]`); n != 1 || rita != 1 {
		t.Fatalf("search for rita@ lists %d subscriptions (rita: %d), want hers alone", n, rita)
	}
	steps(t, ctx, "opening the timeline",
		chromedp.Click(css(`#subs tr[data-sub="sub_rita"] a`)),
		chromedp.WaitVisible(css(`#timeline`)))
	for _, sel := range []string{
		`#timeline tr[data-source="notification"][data-what="expiring"]`,
		`#timeline tr[data-source="job"][data-what="` + billing.AuditWarningSent + `"]`,
		`#timeline tr[data-source="job"][data-what="` + billing.AuditSubscriptionExpired + `"]`,
		`#timeline tr[data-source="job"][data-what="` + billing.AuditAccessRevoked + `"]`,
		`#timeline tr[data-source="payment"]`,
	} {
		if count(t, ctx, sel) != 1 {
			t.Errorf("the timeline lacks %s", sel)
		}
	}
	screenshot(t, ctx, shots, "console-subscriber.png")
	noOverflow(t, ctx, "subscriber page", 1280)

	// The warning email as it was sent.
	steps(t, ctx, "opening the warning email",
		chromedp.Click(css(`#timeline tr[data-what="expiring"] a.email-link`)),
		chromedp.WaitVisible(css(`#subject`)))
	subject := get(t, ctx, "subject", chromedp.Text(css(`#subject`)))
	text := get(t, ctx, "text part", chromedp.Text(css(`#email-text`)))
	if !strings.Contains(text, "Rita") || !strings.Contains(strings.ToLower(subject+text), "básico") {
		t.Errorf("the warning email does not show the data sent: subject %q, text %q", subject, text)
	}
	if n := count(t, ctx, `iframe#email-html[sandbox]`); n != 1 {
		t.Errorf("the HTML part is not in a sandboxed frame")
	}

	// Resend the expiry email that failed for good: confirm, and it is audited.
	steps(t, ctx, "opening the resend confirmation",
		chromedp.Navigate(s.base+"/admin/subscriptions/sub_rita"),
		chromedp.WaitVisible(css(`#timeline`)),
		chromedp.Click(css(`#timeline tr[data-what="expired"] a.resend-link`)),
		chromedp.WaitVisible(css(`#resend-confirm`)))
	steps(t, ctx, "resending", chromedp.Click(css(`#resend-confirm`)), chromedp.WaitVisible(css(`.flash`)))
	if flash := get(t, ctx, "flash", chromedp.Text(css(`.flash`))); !strings.Contains(flash, "delivered") {
		t.Errorf("after resend: flash %q", flash)
	}
	audit, err := s.app.store.ListAudit(context.Background(), billing.AuditFilter{Action: billing.AuditNotificationResent})
	if err != nil || len(audit) != 1 || audit[0].Actor != "Ana Operadora" || audit[0].EntityID != "sub_rita" {
		t.Fatalf("resend audit %+v, %v: want one entry by Ana Operadora", audit, err)
	}

	// The webhook that renewed Lucas is on his timeline, with its source.
	steps(t, ctx, "a renewal's webhook on the timeline",
		chromedp.Navigate(s.base+"/admin/subscriptions/sub_lucas"),
		chromedp.WaitVisible(css(`#timeline`)))
	if n := count(t, ctx, `#timeline tr[data-source="webhook"][data-what="payment"]`); n != 1 {
		t.Errorf("Lucas's timeline shows %d payment webhooks, want the one that renewed him", n)
	}

	// Replay the demo's failed webhook from the inbox: it is received again, and the inbox
	// worker processes it.
	steps(t, ctx, "opening the inbox",
		chromedp.Click(css(`#nav-inbox`)),
		chromedp.WaitVisible(css(`#inbox tr[data-event="`+demoFailedEvent+`"][data-state="failed"]`)))
	screenshot(t, ctx, shots, "console-inbox.png")
	noOverflow(t, ctx, "inbox", 1280)
	steps(t, ctx, "opening the failed event",
		chromedp.Click(css(`#inbox tr[data-event="`+demoFailedEvent+`"] a`)),
		chromedp.WaitVisible(css(`#event[data-state="failed"]`)),
		chromedp.WaitVisible(css(`#attempts`)))
	screenshot(t, ctx, shots, "console-inbox-event.png")
	noOverflow(t, ctx, "inbox event", 1280)
	steps(t, ctx, "replaying",
		chromedp.Click(css(`#replay`)),
		chromedp.WaitVisible(css(`#replay-confirm`)),
		chromedp.Click(css(`#replay-confirm`)),
		chromedp.WaitVisible(css(`.flash`)))
	state := ""
	for i := 0; i < 40 && state != string(billing.WebhookEventStateProcessed); i++ {
		if i > 0 {
			time.Sleep(250 * time.Millisecond) // the worker runs on its own; the page does not refresh itself
			steps(t, ctx, "reloading the event", chromedp.Reload(), chromedp.WaitVisible(css(`#event`)))
		}
		state = get(t, ctx, "event state", chromedp.AttributeValue(css(`#event`), "data-state")).Value
	}
	if state != string(billing.WebhookEventStateProcessed) {
		t.Errorf("the replayed event is %s after 10s, want processed by the inbox worker", state)
	}
	if n := count(t, ctx, `#attempts tbody tr`); n != 2 {
		t.Errorf("the event lists %d attempts, want the failed one and the replay's", n)
	}
	replays, err := s.app.store.ListAudit(context.Background(), billing.AuditFilter{Action: billing.AuditWebhookReplayed})
	if err != nil || len(replays) != 1 || replays[0].Actor != "Ana Operadora" {
		t.Fatalf("replay audit %+v, %v: want one entry by Ana Operadora", replays, err)
	}

	// Run a job in the background: the progress bar reaches 100% without a reload.
	job := billing.JobCheckExpiring
	steps(t, ctx, "background run",
		chromedp.Navigate(s.base+"/admin/jobs/"+job),
		chromedp.WaitVisible(css(`#progress`)),
		chromedp.Click(css(`button[name=start]`)),
		chromedp.WaitVisible(css(`#progress[data-run-id]:not([data-run-id=""])`)))
	runID := get(t, ctx, "run id", chromedp.AttributeValue(css(`#progress`), "data-run-id")).Value
	steps(t, ctx, "progress reaches 100%",
		chromedp.WaitVisible(css(`#progress[data-percent="100"][data-running="false"][data-shown-run="`+runID+`"]`)))
	if v := get(t, ctx, "bar value", chromedp.Evaluate[float64](`document.getElementById("run-progress").value`)); v != 100 {
		t.Errorf("progress bar at %v, want 100", v)
	}
	loads := get(t, ctx, "navigations", chromedp.Evaluate[int](`performance.getEntriesByType("navigation").length`))
	if loads != 1 {
		t.Errorf("the page reloaded (%d navigations) while the bar moved", loads)
	}
	steps(t, ctx, "job chart", chromedp.Reload(), chromedp.WaitVisible(css(`#chart-duration svg`)))
	if n := count(t, ctx, `#chart-duration rect.bar`) + count(t, ctx, `#chart-found rect.bar`); n < 3 {
		t.Errorf("the job charts have %d bars, want the run's duration, found and processed", n)
	}
	screenshot(t, ctx, shots, "console-job.png")
	noOverflow(t, ctx, "job page", 1280)

	steps(t, ctx, "overview charts", chromedp.Navigate(s.base+"/admin/"), chromedp.WaitVisible(css(`#chart-status svg`)))
	for _, sel := range []string{`#chart-status polyline`, `#chart-mrr-BRL polyline`, `#chart-cancellations rect.bar`, `[id^="chart-forecast-"] rect.bar`} {
		if count(t, ctx, sel) == 0 {
			t.Errorf("the overview lacks %s", sel)
		}
	}
	screenshot(t, ctx, shots, "console-overview.png")
	noOverflow(t, ctx, "overview", 1280)

	for _, page := range []struct{ path, wait, shot string }{
		{"/admin/", `#chart-status`, "console-overview-375.png"},
		{"/admin/subscriptions/sub_rita", `#timeline`, "console-subscriber-375.png"},
		{"/admin/jobs/" + job, `#chart-duration`, "console-job-375.png"},
		{"/admin/email-log", `#emails`, "console-emails-375.png"},
		{"/admin/subscriptions", `#subs`, "console-subscriptions-375.png"},
		{"/admin/inbox", `#inbox`, "console-inbox-375.png"},
		{"/admin/inbox/" + demoGateway + "/" + demoFailedEvent, `#attempts`, "console-inbox-event-375.png"},
	} {
		steps(t, ctx, page.path+" at 375px",
			chromedp.EmulateViewport(375, 812),
			chromedp.Navigate(s.base+page.path),
			chromedp.WaitVisible(css(page.wait)))
		noOverflow(t, ctx, page.path, 375)
		screenshot(t, ctx, shots, page.shot)
	}

	// The dark theme: light text and chart labels on a dark page.
	dark := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	})
	for _, width := range []int64{1280, 375} {
		steps(t, ctx, "dark overview", dark, chromedp.EmulateViewport(width, 900),
			chromedp.Navigate(s.base+"/admin/"), chromedp.WaitVisible(css(`#chart-status`)))
		colors := get(t, ctx, "colors", chromedp.Evaluate[[]string](`[getComputedStyle(document.body).backgroundColor,
			getComputedStyle(document.body).color, getComputedStyle(document.querySelector("#chart-status .axis")).fill]`))
		if len(colors) != 3 || colors[0] != "rgb(11, 17, 32)" || colors[1] != "rgb(229, 231, 235)" || colors[2] != "rgb(156, 163, 175)" {
			t.Errorf("dark theme at %dpx: background, text, chart labels %v", width, colors)
		}
		noOverflow(t, ctx, "dark overview", int(width))
		screenshot(t, ctx, shots, "console-overview-dark-"+strconv.FormatInt(width, 10)+".png")
	}
}
