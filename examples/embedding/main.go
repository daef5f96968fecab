// Command embedding is the README's embedding example as a program that compiles and runs: an
// existing net/http service that adds renewkit's jobs, admin API, webhook inbox (its worker
// and admin API) and Stripe webhook to its own mux, behind its own admin check. It uses MongoDB when MONGODB_URI is set and SMTP when
// SMTP_HOST is set, else the in-memory store and the log notifier.
//
//	ADMIN_TOKEN=0123456789abcdef go run ./examples/embedding   # ADDR defaults to 127.0.0.1:8080
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/notify/smtpnotify"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
	"github.com/renewkit/renewkit/store/mongostore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	if err := run(ctx, addr, os.Getenv("ADMIN_TOKEN")); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, adminToken string) error {
	// The store: the app's own MongoDB database, in the legacy schema.
	var st billing.Store = memstore.New()
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		client, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			return err
		}
		defer client.Disconnect(context.Background())
		ms, err := mongostore.New(client.Database("app"), mongostore.Config{})
		if err != nil {
			return err
		}
		if err := ms.EnsureIndexes(ctx); err != nil {
			return err
		}
		st = ms
	}

	// Emails: SMTP when configured, else logged.
	renderer, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com", ProductName: "Acme"})
	if err != nil {
		return err
	}
	var mailer billing.Notifier
	if host := os.Getenv("SMTP_HOST"); host != "" {
		m, err := smtpnotify.New(smtpnotify.Config{Host: host, From: "no-reply@example.com",
			Username: os.Getenv("SMTP_USER"), Password: os.Getenv("SMTP_PASSWORD"), Renderer: renderer})
		if err != nil {
			return err
		}
		defer m.Shutdown(context.Background())
		mailer = m
	} else if mailer, err = lognotify.NewNotifier(lognotify.Config{Renderer: renderer}); err != nil {
		return err
	}

	// The service, with Stripe renewals when a key is configured.
	renewals := map[string]billing.RenewalLookup{}
	if key := os.Getenv("STRIPE_SECRET_KEY"); key != "" {
		l, err := stripegw.NewRenewalLookup(stripegw.Config{SecretKey: key})
		if err != nil {
			return err
		}
		renewals[billing.GatewayStripe] = l
	}
	svc, err := billing.NewService(st, mailer, billing.Config{WarningDays: []int{7, 3, 1}, Renewals: renewals})
	if err != nil {
		return err
	}

	// The scheduler, in the business's time zone.
	saoPaulo, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		return err
	}
	sched, err := scheduler.NewScheduler(svc.Jobs(), st, scheduler.Config{Location: saoPaulo,
		SubscriptionStats: svc.SubscriptionStats})
	if err != nil {
		return err
	}
	if err := sched.Start(ctx); err != nil {
		return err
	}
	defer sched.Shutdown(context.Background())

	// The inbox worker applies the webhook events the handlers accepted. Without it (or the
	// gateways' ProcessInline option) events are only stored. Shutdown waits for the events
	// in hand; events it leaves are taken again after their lease (Config.Inbox.Lease).
	inbox, err := billing.NewInboxWorker(svc)
	if err != nil {
		return err
	}
	if err := inbox.Start(ctx); err != nil {
		return err
	}
	defer inbox.Shutdown(context.Background())

	// The host's mux: its own routes, plus renewkit's behind the host's admin check.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("the host app\n")) })
	// requireAdmin stands for the host's own admin check (a require_admin check); here a
	// bearer token. An empty token lets nobody in.
	requireAdmin := scheduler.BearerToken(adminToken)
	admin, err := scheduler.AdminHandler(sched, scheduler.AdminOptions{Authorize: requireAdmin})
	if err != nil {
		return err
	}
	mux.Handle("/api/admin/jobs/", http.StripPrefix("/api/admin/jobs", admin))
	inboxAdmin, err := scheduler.InboxAdminHandler(svc, scheduler.InboxOptions{Authorize: requireAdmin})
	if err != nil {
		return err
	}
	mux.Handle("/api/admin/inbox/", http.StripPrefix("/api/admin/inbox", inboxAdmin))
	if secret := os.Getenv("STRIPE_WEBHOOK_SECRET"); secret != "" {
		hook, err := stripegw.NewWebhookHandler(svc.Processor(), stripegw.Config{WebhookSecret: secret, SecretKey: os.Getenv("STRIPE_SECRET_KEY")})
		if err != nil {
			return err
		}
		mux.Handle("POST /api/payments/stripe/webhook", hook)
	}

	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("listening on http://%s", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
