package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/notify/smtpnotify"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/scheduler/dashboard"
	"github.com/renewkit/renewkit/store/memstore"
)

// shutdownGrace bounds how long running jobs and requests may take to finish on SIGTERM.
const shutdownGrace = 30 * time.Second

// app is the assembled server: every part built from the library's public API.
type app struct {
	cfg      *Config
	log      *slog.Logger
	store    billing.Store
	closers  []func(context.Context) error
	svc      *billing.Service
	sched    *scheduler.Scheduler
	inbox    *billing.InboxWorker
	renderer *notify.Renderer
	metrics  *metrics
	token    string
	running  atomic.Bool
	handler  http.Handler
	features []string
}

// serve builds the app, listens and runs until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg *Config, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		fmt.Fprintf(stderr, "standalone: invalid configuration: HTTP_ADDR: cannot listen on %q: %v\n", cfg.HTTPAddr, unwrapOp(err))
		return 2
	}
	a, err := build(ctx, cfg, log)
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "standalone: %v\n", err)
		return 2
	}
	if cfg.AdminToken == "" {
		fmt.Fprintf(stdout, "admin token: %s\n", a.token)
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	log.Info("renewkit standalone started", "addr", ln.Addr().String(), "features", strings.Join(a.features, ", "))

	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if err := a.inbox.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "standalone: starting the webhook inbox worker: %v\n", err)
		_ = srv.Close()
		return 1
	}
	if cfg.schedulerOn {
		if err := a.sched.Start(ctx); err != nil {
			fmt.Fprintf(stderr, "standalone: starting scheduler: %v\n", err)
			_ = srv.Close()
			return 1
		}
		a.running.Store(true)
	}
	if cfg.onServe != nil {
		cfg.onServe(a)
	}
	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", cfg.shutdownGrace().String())
	case err := <-errc:
		log.Error("server stopped", "error", err)
		code = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "error", err)
	}
	a.running.Store(false)
	if err := a.inbox.Shutdown(sctx); err != nil {
		log.Warn("webhook inbox worker shutdown: events in hand are retried after their lease", "error", err)
	}
	if err := a.sched.Shutdown(sctx); err != nil {
		log.Warn("scheduler shutdown: running jobs were cancelled", "error", err)
		code = 1
	}
	for _, c := range a.closers {
		if err := c(sctx); err != nil {
			log.Warn("close", "error", err)
		}
	}
	log.Info("stopped")
	return code
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// build assembles the app from cfg.
func build(ctx context.Context, cfg *Config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log, metrics: newMetrics(), token: cfg.AdminToken}
	if a.token == "" {
		var b [24]byte
		_, _ = rand.Read(b[:])
		a.token = hex.EncodeToString(b[:])
	}
	clock := billing.SystemClock()

	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	a.store = st
	if cfg.demo {
		summary, err := loadDemo(ctx, st, clock.Now())
		if err != nil {
			return nil, err
		}
		a.features = append(a.features, summary)
	}

	a.renderer, err = notify.NewRenderer(notify.Config{FrontendURL: cfg.FrontendURL, AdminURL: cfg.adminURL, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: FRONTEND_URL: %w", err)
	}
	notifier, err := a.openNotifier()
	if err != nil {
		return nil, err
	}
	notifier = meteredNotifier{Notifier: notifier, m: a.metrics}

	renewals, webhooks, err := a.gateways(clock)
	if err != nil {
		return nil, err
	}
	a.svc, err = billing.NewService(st, notifier, billing.Config{Clock: clock, Logger: log, Renewals: renewals, ClaimLease: cfg.claimLease,
		ReferenceSecret: []byte(cfg.ReferenceSecret), Inbox: billing.InboxConfig{Lease: cfg.inboxLease, Backoff: cfg.inboxBackoff, Concurrency: cfg.inboxConcurrency,
			MaxAttempts: cfg.inboxMaxAttempts, ParkWait: cfg.inboxParkWait, Poll: cfg.inboxPoll, Batch: cfg.inboxBatch}})
	if err != nil {
		return nil, err
	}
	if cfg.demo {
		if err := a.svc.RegisterWebhookProcessor(demoGateway, demoLookup{store: st, clock: clock}.processWebhook); err != nil {
			return nil, err
		}
	}
	// The webhook handlers accept events into the inbox; this worker applies them.
	if a.inbox, err = billing.NewInboxWorker(a.svc); err != nil {
		return nil, err
	}
	a.inbox.Observe = a.metrics.observeInbox(clock.Now)
	a.metrics.inbox.configure(a.svc)

	alertTo := cfg.AlertEmail
	if alertTo == "" {
		alertTo = cfg.SMTPFrom
	}
	snap := &snapshotter{svc: a.svc}
	snap.due(ctx, clock.Now())
	jobs := a.withSnapshots(a.metrics.jobs(append(a.svc.Jobs(), cfg.extraJobs...)), snap)
	schedCfg := scheduler.Config{
		Location: cfg.location,
		Logger:   log,
		// The store itself, not the metering wrapper, so the scheduler finds its optional
		// capabilities (billing.LockInspector) by type assertion.
		Locker: st,
		// Due counts over this service's warning ladder and renew window.
		SubscriptionStats: a.svc.SubscriptionStats,
		// The jobs' own notifier: alerts raised by a run its breaker stopped skip it.
		Alerts: &scheduler.Alerts{
			Notifier: notifier,
			To:       billing.Recipient{Email: alertTo, Name: "renewkit operators", Locale: "en"},
		},
		// Zero (JOB_LOCK_TTL unset) is the scheduler's default.
		LockTTL: cfg.jobLockTTL,
	}
	hook, err := a.alertWebhook(alertTo)
	if err != nil {
		return nil, err
	}
	if hook != nil {
		schedCfg.Alerts.Channels = append(schedCfg.Alerts.Channels, scheduler.AlertChannel{Name: "webhook", Notifier: hook})
	}
	a.sched, err = scheduler.NewScheduler(jobs, meteredStore{Store: st, m: a.metrics}, schedCfg)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	a.metrics.state.configure(ids, st, a.svc.Analytics, cfg.gaugeTTL, log)
	if cfg.schedulerOn {
		a.features = append(a.features, "scheduler on ("+cfg.location.String()+")")
	} else {
		a.features = append(a.features, "scheduler off (ENABLE_SCHEDULER=false): jobs run only when triggered")
	}
	a.handler, err = a.routes(webhooks)
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *app) openStore(ctx context.Context) (billing.Store, error) {
	switch {
	case a.cfg.DatabaseURL != "":
		return a.openPostgres(ctx)
	case a.cfg.MongoURI != "":
		return a.openMongo(ctx)
	}
	a.features = append(a.features, "store: in memory (set DATABASE_URL for PostgreSQL or MONGODB_URI for MongoDB)")
	return memstore.New(), nil
}

func (a *app) openNotifier() (billing.Notifier, error) {
	if a.cfg.SMTPHost == "" {
		n, err := lognotify.NewNotifier(lognotify.Config{Logger: a.log, EMLDir: a.cfg.OutboxDir, Renderer: a.renderer, From: a.cfg.SMTPFrom})
		if err != nil {
			return nil, fmt.Errorf("invalid configuration: OUTBOX_DIR: %w", err)
		}
		a.features = append(a.features, "email: logged, .eml files in "+a.cfg.OutboxDir+" (set SMTP_HOST to send)")
		return n, nil
	}
	policy := a.cfg.SMTPTLS
	if policy == "" && a.cfg.smtpPort == 465 {
		policy = "implicit"
	}
	tlsPolicy, err := smtpnotify.ParseTLSPolicy(policy)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: SMTP_TLS: %w", err)
	}
	n, err := smtpnotify.New(smtpnotify.Config{Host: a.cfg.SMTPHost, Port: a.cfg.smtpPort, Username: a.cfg.SMTPUser,
		Password: a.cfg.SMTPPassword, From: a.cfg.SMTPFrom, TLSPolicy: tlsPolicy, Renderer: a.renderer, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: SMTP_HOST: %w", err)
	}
	a.closers = append(a.closers, n.Shutdown)
	a.features = append(a.features, fmt.Sprintf("email: SMTP %s:%d", a.cfg.SMTPHost, a.cfg.smtpPort))
	return n, nil
}

// alertWebhook returns the signed webhook channel for operator alerts, nil when
// ALERT_WEBHOOK_URL is empty. Only the URL's host is reported: a URL path or query may
// carry a token, and the secret is never logged.
func (a *app) alertWebhook(to string) (billing.Notifier, error) {
	if a.cfg.AlertWebhookURL == "" {
		a.features = append(a.features, "alerts: email to "+to+" (set ALERT_WEBHOOK_URL for a second channel)")
		return nil, nil
	}
	w, err := notify.NewWebhook(notify.WebhookConfig{URL: a.cfg.AlertWebhookURL, Secret: []byte(a.cfg.AlertWebhookSecret),
		Renderer: a.renderer, Logger: a.log})
	if err != nil {
		// notify's errors name the URL; say which setting is wrong without repeating it.
		return nil, errors.New("invalid configuration: ALERT_WEBHOOK_URL / ALERT_WEBHOOK_SECRET: need an absolute http(s) URL and a secret of at least 16 bytes")
	}
	host := "?"
	if u, perr := url.Parse(a.cfg.AlertWebhookURL); perr == nil {
		host = u.Scheme + "://" + u.Host
	}
	a.features = append(a.features, "alerts: email to "+to+" and signed webhook to "+host)
	return w, nil
}

func (a *app) routes(webhooks map[string]webhookBuilder) (http.Handler, error) {
	authorize := dashboard.TokenAuthorizer(a.token)
	api, err := scheduler.AdminHandler(a.sched, scheduler.AdminOptions{Authorize: authorize, Logger: a.log,
		Analytics: func(ctx context.Context) (any, error) { return a.svc.Analytics(ctx) }})
	if err != nil {
		return nil, err
	}
	dash, err := dashboard.New(a.sched, dashboard.Config{Authorize: authorize, LoginToken: a.token,
		EmailPreviewURL: "emails/", Logger: a.log, Extra: a.analytics,
		Console: a.svc, Insights: a.svc, Inbox: a.svc, EmailView: a.emailView})
	if err != nil {
		return nil, err
	}
	consoleAPI, err := scheduler.ConsoleHandler(a.svc, scheduler.ConsoleOptions{Authorize: authorize,
		Identify: dashboard.TokenOperator(a.token), Logger: a.log})
	if err != nil {
		return nil, err
	}
	inbox, err := scheduler.InboxAdminHandler(a.svc, scheduler.InboxOptions{Authorize: authorize, Identify: dashboard.TokenOperator(a.token), Logger: a.log})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/admin/inbox/", http.StripPrefix("/api/admin/inbox", inbox))
	mux.Handle("/api/admin/jobs/", http.StripPrefix("/api/admin/jobs", api))
	mux.Handle("/api/admin/jobs", atRoot(api)) // GET /api/admin/jobs, without the slash
	// The console's API answers the rest of /api/admin/ (JSON 404 for unknown routes); more
	// specific admin routes (the jobs API, the webhook inbox) are mounted beside it.
	mux.Handle("/api/admin/", http.StripPrefix("/api/admin", consoleAPI))
	mux.Handle("/admin/", http.StripPrefix("/admin", dash))
	mux.Handle("/admin/emails/", requireAuth(authorize, http.StripPrefix("/admin/emails", a.renderer.PreviewHandler())))
	for gw, newHandler := range webhooks {
		h, err := newHandler(a.svc)
		if err != nil {
			return nil, fmt.Errorf("%s webhook: %w", gw, err)
		}
		mux.Handle("/api/payments/"+gw+"/webhook", a.metrics.webhook(gw, h))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle("GET /metrics", a.metrics.handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/", http.StatusFound)
	})
	return mux, nil
}

func (a *app) ready(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{"store": "ok", "scheduler": "ok"}
	status := http.StatusOK
	if p, ok := a.store.(billing.Pinger); ok {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			checks["store"], status = "unreachable", http.StatusServiceUnavailable
		}
	}
	if a.cfg.schedulerOn && !a.running.Load() {
		checks["scheduler"], status = "not running", http.StatusServiceUnavailable
	} else if !a.cfg.schedulerOn {
		checks["scheduler"] = "disabled"
	}
	writeJSON(w, status, checks)
}

// requireAuth guards a handler with the admin check (401/403 as JSON).
func requireAuth(authorize scheduler.Authorizer, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authorize(r); err != nil {
			if errors.Is(err, scheduler.ErrForbidden) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "admin role required"})
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="renewkit"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "authentication required"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// atRoot serves h as if the request were for its root path.
func atRoot(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/", ""
		h.ServeHTTP(w, r2)
	})
}
