package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/mongostore"
)

// secrets are set in every invalid-configuration case: no error line may echo them.
var secrets = map[string]string{
	"SMTP_PASSWORD":         "smtp-pass-Zq81",
	"STRIPE_SECRET_KEY":     "sk_test_secretZq82",
	"STRIPE_WEBHOOK_SECRET": "whsec_secretZq83",
	"PAYPAL_CLIENT_SECRET":  "paypal-secret-Zq84",
}

// Each case proves that one invalid setting stops the server before it serves: exit code
// non-zero, exactly one stderr line, naming the variable, echoing no secret.
func TestInvalidConfiguration(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	cases := []struct {
		name     string
		env      map[string]string
		args     []string
		variable string
		hidden   string // a secret value of this case that must not appear
	}{
		{name: "bad MONGODB_URI scheme", env: map[string]string{"MONGODB_URI": "http://admin:mongo-pw-Zq90@db.example.com/"},
			variable: "MONGODB_URI", hidden: "mongo-pw-Zq90"},
		{name: "MONGODB_URI without host", env: map[string]string{"MONGODB_URI": "mongodb://admin:mongo-pw-Zq91@"},
			variable: "MONGODB_URI", hidden: "mongo-pw-Zq91"},
		{name: "bad DATABASE_URL scheme", env: map[string]string{"DATABASE_URL": "mysql://admin:pg-pw-Zq70@db.example.com/app"},
			variable: "DATABASE_URL", hidden: "pg-pw-Zq70"},
		{name: "DATABASE_URL and MONGODB_URI both set", env: map[string]string{"DATABASE_URL": "postgres://admin:pg-pw-Zq71@db.example.com/app",
			"MONGODB_URI": "mongodb://db.example.com/"}, variable: "DATABASE_URL", hidden: "pg-pw-Zq71"},
		{name: "unknown SCHEDULER_TIMEZONE", env: map[string]string{"SCHEDULER_TIMEZONE": "Mars/Olympus_Mons"}, variable: "SCHEDULER_TIMEZONE"},
		{name: "unknown time zone by flag", args: []string{"-scheduler-timezone", "Atlantis/Capital"}, variable: "SCHEDULER_TIMEZONE"},
		{name: "port taken", env: map[string]string{"HTTP_ADDR": held.Addr().String()}, variable: "HTTP_ADDR"},
		{name: "bad ENABLE_SCHEDULER", env: map[string]string{"ENABLE_SCHEDULER": "sometimes"}, variable: "ENABLE_SCHEDULER"},
		{name: "bad SMTP_PORT", env: map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "smtp"}, variable: "SMTP_PORT"},
		{name: "SMTP_PORT out of range", env: map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "70000"}, variable: "SMTP_PORT"},
		{name: "bad FRONTEND_URL", env: map[string]string{"FRONTEND_URL": "app.example.com"}, variable: "FRONTEND_URL"},
		{name: "bad PUBLIC_URL", env: map[string]string{"PUBLIC_URL": "jobs.example.com"}, variable: "PUBLIC_URL"},
		{name: "short ADMIN_TOKEN", env: map[string]string{"ADMIN_TOKEN": "short-Zq92"}, variable: "ADMIN_TOKEN", hidden: "short-Zq92"},
		{name: "PAYPAL_WEBHOOK_ID without credentials", env: map[string]string{"PAYPAL_WEBHOOK_ID": "WH-1234"}, variable: "PAYPAL_WEBHOOK_ID"},
		{name: "bad PAYPAL_MODE", env: map[string]string{"PAYPAL_MODE": "production"}, variable: "PAYPAL_MODE"},
		{name: "bad MONGODB_MONEY", env: map[string]string{"MONGODB_URI": "mongodb://db.example.com/", "MONGODB_MONEY": "cents"}, variable: "MONGODB_MONEY"},
		{name: "bad MONGODB_DEFAULT_CURRENCY", env: map[string]string{"MONGODB_URI": "mongodb://db.example.com/", "MONGODB_DEFAULT_CURRENCY": "real"}, variable: "MONGODB_DEFAULT_CURRENCY"},
		{name: "bad MONGODB_REFERENCES", env: map[string]string{"MONGODB_URI": "mongodb://db.example.com/", "MONGODB_REFERENCES": "uuid"}, variable: "MONGODB_REFERENCES"},
		{name: "STRIPE_PRICES pair without plan", env: map[string]string{"STRIPE_PRICES": "price_1=pro,price_2"}, variable: "STRIPE_PRICES"},
		{name: "PAYPAL_PLANS id mapped twice", env: map[string]string{"PAYPAL_PLANS": "P-1=pro,P-1=basic"}, variable: "PAYPAL_PLANS"},
		{name: "MERCADOPAGO_WEBHOOK_SECRET without access token", env: map[string]string{"MERCADOPAGO_WEBHOOK_SECRET": "mp-secret-Zq93"},
			variable: "MERCADOPAGO_ACCESS_TOKEN", hidden: "mp-secret-Zq93"},
		{name: "bad ALERT_WEBHOOK_URL", env: map[string]string{"ALERT_WEBHOOK_URL": "ops.example.com/hook?token=tok-Zq94",
			"ALERT_WEBHOOK_SECRET": "alert-secret-Zq95-0123456789"}, variable: "ALERT_WEBHOOK_URL", hidden: "Zq9"},
		{name: "short ALERT_WEBHOOK_SECRET", env: map[string]string{"ALERT_WEBHOOK_URL": "https://ops.example.com/hook",
			"ALERT_WEBHOOK_SECRET": "short-Zq96"}, variable: "ALERT_WEBHOOK_SECRET", hidden: "short-Zq96"},
		{name: "ALERT_WEBHOOK_SECRET without URL", env: map[string]string{"ALERT_WEBHOOK_SECRET": "alert-secret-Zq97-0123456789"},
			variable: "ALERT_WEBHOOK_URL", hidden: "alert-secret-Zq97"},
		{name: "CLAIM_LEASE below a second", env: map[string]string{"CLAIM_LEASE": "500ms"}, variable: "CLAIM_LEASE"},
		{name: "INBOX_LEASE not a duration", env: map[string]string{"INBOX_LEASE": "soon"}, variable: "INBOX_LEASE"},
		{name: "INBOX_BACKOFF entry not a duration", env: map[string]string{"INBOX_BACKOFF": "1m,soon,2h"}, variable: "INBOX_BACKOFF"},
		{name: "INBOX_BACKOFF empty entry", env: map[string]string{"INBOX_BACKOFF": "1m,,2h"}, variable: "INBOX_BACKOFF"},
		{name: "INBOX_BACKOFF below a second", env: map[string]string{"INBOX_BACKOFF": "1m,10ms"}, variable: "INBOX_BACKOFF"},
		{name: "INBOX_BACKOFF negative", env: map[string]string{"INBOX_BACKOFF": "-1m"}, variable: "INBOX_BACKOFF"},
		{name: "INBOX_CONCURRENCY zero", env: map[string]string{"INBOX_CONCURRENCY": "0"}, variable: "INBOX_CONCURRENCY"},
		{name: "INBOX_CONCURRENCY not a number", env: map[string]string{"INBOX_CONCURRENCY": "many"}, variable: "INBOX_CONCURRENCY"},
		{name: "INBOX_CONCURRENCY too high", env: map[string]string{"INBOX_CONCURRENCY": "100000"}, variable: "INBOX_CONCURRENCY"},
		{name: "bad INBOX_CONCURRENCY by flag", args: []string{"-inbox-concurrency", "-3"}, variable: "INBOX_CONCURRENCY"},
		{name: "INBOX_MAX_ATTEMPTS zero", env: map[string]string{"INBOX_MAX_ATTEMPTS": "0"}, variable: "INBOX_MAX_ATTEMPTS"},
		{name: "INBOX_MAX_ATTEMPTS not a number", env: map[string]string{"INBOX_MAX_ATTEMPTS": "often"}, variable: "INBOX_MAX_ATTEMPTS"},
		{name: "bad INBOX_MAX_ATTEMPTS by flag", args: []string{"-inbox-max-attempts", "5000"}, variable: "INBOX_MAX_ATTEMPTS"},
		{name: "INBOX_PARK_WAIT not a duration", env: map[string]string{"INBOX_PARK_WAIT": "3 days"}, variable: "INBOX_PARK_WAIT"},
		{name: "INBOX_PARK_WAIT below a minute", env: map[string]string{"INBOX_PARK_WAIT": "30s"}, variable: "INBOX_PARK_WAIT"},
		{name: "INBOX_POLL not a duration", env: map[string]string{"INBOX_POLL": "fast"}, variable: "INBOX_POLL"},
		{name: "INBOX_POLL below 10ms", env: map[string]string{"INBOX_POLL": "1ms"}, variable: "INBOX_POLL"},
		{name: "INBOX_POLL above an hour", env: map[string]string{"INBOX_POLL": "2h"}, variable: "INBOX_POLL"},
		{name: "INBOX_BATCH zero", env: map[string]string{"INBOX_BATCH": "0"}, variable: "INBOX_BATCH"},
		{name: "INBOX_BATCH too high", env: map[string]string{"INBOX_BATCH": "1001"}, variable: "INBOX_BATCH"},
		{name: "bad INBOX_BATCH by flag", args: []string{"-inbox-batch", "lots"}, variable: "INBOX_BATCH"},
		{name: "bad JOB_LOCK_TTL", env: map[string]string{"JOB_LOCK_TTL": "soon"}, variable: "JOB_LOCK_TTL"},
		{name: "unknown flag", args: []string{"-no-such-flag"}, variable: "no-such-flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"HTTP_ADDR": "127.0.0.1:0", "OUTBOX_DIR": t.TempDir()}
			for k, v := range secrets {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a valid configuration would stop at once instead of serving
			code := run(ctx, tc.args, envFunc(env), stdout, stderr)
			out := stderr.String()
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; stderr:\n%s", out)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if tc.name != "unknown flag" && len(lines) != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", len(lines), out)
			}
			if !strings.Contains(out, tc.variable) {
				t.Errorf("stderr does not name %s:\n%s", tc.variable, out)
			}
			for _, s := range append([]string{tc.hidden}, values(secrets)...) {
				if s != "" && strings.Contains(out+stdout.String(), s) {
					t.Errorf("output echoes the secret %q:\n%s", s, out)
				}
			}
			if strings.Contains(stdout.String(), "listening on") {
				t.Errorf("server started: %s", stdout.String())
			}
		})
	}
}

// Proves the run link of operator alerts points at this server's dashboard: PUBLIC_URL when
// set, otherwise localhost on the HTTP_ADDR port, never FRONTEND_URL.
func TestAdminURL(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "http://localhost:8000/admin/jobs"},
		{map[string]string{"HTTP_ADDR": "127.0.0.1:9090"}, "http://127.0.0.1:9090/admin/jobs"},
		{map[string]string{"PUBLIC_URL": "https://jobs.example.com/"}, "https://jobs.example.com/admin/jobs"},
	} {
		cfg, err := loadConfig(nil, envFunc(tc.env), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if cfg.adminURL != tc.want {
			t.Errorf("%v: adminURL %q, want %q", tc.env, cfg.adminURL, tc.want)
		}
	}
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Proves -h lists every setting with its variable, flag and default, and exits 0.
func TestHelpListsEverySetting(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		code := run(context.Background(), []string{arg}, envFunc(nil), stdout, stderr)
		if code != 0 {
			t.Fatalf("%s: exit code %d, want 0", arg, code)
		}
		help := stdout.String() + stderr.String()
		for _, s := range (&Config{}).settings() {
			def := s.def
			if def == "" {
				def = `""`
			}
			line := ""
			for _, l := range strings.Split(help, "\n") {
				if strings.Contains(l, "-"+s.flag+" ") && strings.Contains(l, s.env) {
					line = l
				}
			}
			if line == "" {
				t.Errorf("%s: no line for -%s / %s in:\n%s", arg, s.flag, s.env, help)
				continue
			}
			if !strings.Contains(line, "default "+def) {
				t.Errorf("%s: line for %s lacks its default %s: %q", arg, s.env, def, line)
			}
		}
		for _, env := range []string{"MONGODB_URI", "MONGODB_DB", "ENABLE_SCHEDULER", "SMTP_HOST", "SMTP_PORT", "SMTP_USER",
			"SMTP_PASSWORD", "SMTP_FROM", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "FRONTEND_URL", "MERCADOPAGO_ACCESS_TOKEN",
			"MERCADOPAGO_WEBHOOK_SECRET", "PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET", "PAYPAL_WEBHOOK_ID", "PAYPAL_MODE",
			"ADMIN_TOKEN", "SCHEDULER_TIMEZONE", "HTTP_ADDR"} {
			if !strings.Contains(help, env) {
				t.Errorf("%s: help does not list %s", arg, env)
			}
		}
		if !strings.Contains(help, "default :8000") {
			t.Errorf("help lacks HTTP_ADDR's default :8000")
		}
	}
}

// Proves environment values are defaults that flags override, and that empty variables
// select the documented defaults.
func TestFlagsOverrideEnvironment(t *testing.T) {
	cfg, err := loadConfig([]string{"-http-addr", "127.0.0.1:9", "-enable-scheduler=false"},
		envFunc(map[string]string{"HTTP_ADDR": "127.0.0.1:8", "SCHEDULER_TIMEZONE": "UTC", "ENABLE_SCHEDULER": "true"}), &syncBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9" || cfg.schedulerOn || cfg.location.String() != "UTC" {
		t.Fatalf("got addr %s scheduler %v zone %s", cfg.HTTPAddr, cfg.schedulerOn, cfg.location)
	}
	cfg, err = loadConfig(nil, envFunc(nil), &syncBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(cfg.HTTPAddr, " ", cfg.schedulerOn, " ", cfg.location, " ", cfg.demo, " ", cfg.OutboxDir, " ", cfg.shutdownGrace())
	if want := ":8000 true America/Sao_Paulo true outbox 30s"; got != want {
		t.Fatalf("defaults %q, want %q", got, want)
	}
}

// The plan maps reach the gateways as maps: each gateway id buys the plan it names.
func TestPlanMapsParsed(t *testing.T) {
	env := map[string]string{"STRIPE_PRICES": "price_pro=pro, price_basic=basic", "PAYPAL_PLANS": "P-9=pro",
		"MERCADOPAGO_PLANS": "2c93=basic"}
	c, err := loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.stripePrices["price_pro"] != "pro" || c.stripePrices["price_basic"] != "basic" || len(c.stripePrices) != 2 ||
		c.paypalPlans["P-9"] != "pro" || c.mercadoPagoPlans["2c93"] != "basic" {
		t.Fatalf("plan maps %v %v %v", c.stripePrices, c.paypalPlans, c.mercadoPagoPlans)
	}
}

// The original app's database: float prices in reais with no currency, string references.
func TestMongoLegacyShapesConfigured(t *testing.T) {
	env := map[string]string{"MONGODB_URI": "mongodb://db.example.com/", "MONGODB_MONEY": "major",
		"MONGODB_DEFAULT_CURRENCY": "BRL", "MONGODB_REFERENCES": "objectid"}
	c, err := loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.mongo.Money != mongostore.MoneyMajorUnits || c.mongo.DefaultCurrency != "BRL" || c.mongo.References != mongostore.ReferencesObjectID {
		t.Fatalf("mongostore config %+v", c.mongo)
	}
}

// Proves the inbox worker settings reach the billing service the server runs: the backoff
// list in order, the concurrency, max attempts, park wait, poll and batch, and (unset)
// billing's defaults.
func TestInboxWorkerSettings(t *testing.T) {
	defBackoff := []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	defaults := billing.InboxConfig{Backoff: defBackoff, MaxAttempts: 10, ParkWait: 72 * time.Hour, Lease: time.Minute, Poll: time.Second, Batch: 64, Concurrency: 8}
	with := func(f func(*billing.InboxConfig)) billing.InboxConfig {
		c := defaults
		f(&c)
		return c
	}
	for _, tc := range []struct {
		env  map[string]string
		want billing.InboxConfig
	}{
		{map[string]string{"INBOX_BACKOFF": "30s, 2m,1h", "INBOX_CONCURRENCY": "3"}, with(func(c *billing.InboxConfig) {
			c.Backoff, c.Concurrency = []time.Duration{30 * time.Second, 2 * time.Minute, time.Hour}, 3
		})},
		{map[string]string{"INBOX_BACKOFF": "5m"}, with(func(c *billing.InboxConfig) { c.Backoff = []time.Duration{5 * time.Minute} })},
		{map[string]string{"INBOX_MAX_ATTEMPTS": "4", "INBOX_PARK_WAIT": "24h", "INBOX_POLL": "250ms", "INBOX_BATCH": "16"}, with(func(c *billing.InboxConfig) {
			c.MaxAttempts, c.ParkWait, c.Poll, c.Batch = 4, 24*time.Hour, 250*time.Millisecond, 16
		})},
		{map[string]string{"INBOX_MAX_ATTEMPTS": "1000", "INBOX_PARK_WAIT": "1m", "INBOX_POLL": "1h", "INBOX_BATCH": "1"}, with(func(c *billing.InboxConfig) {
			c.MaxAttempts, c.ParkWait, c.Poll, c.Batch = 1000, time.Minute, time.Hour, 1
		})},
		{map[string]string{}, defaults},
	} {
		env := map[string]string{"HTTP_ADDR": "127.0.0.1:0", "OUTBOX_DIR": t.TempDir(), "ENABLE_SCHEDULER": "false"}
		for k, v := range tc.env {
			env[k] = v
		}
		cfg, err := loadConfig(nil, envFunc(env), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		a, err := build(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("%v: build: %v", tc.env, err)
		}
		got := a.svc.Config().Inbox
		if !slices.Equal(got.Backoff, tc.want.Backoff) || got.Concurrency != tc.want.Concurrency || got.MaxAttempts != tc.want.MaxAttempts ||
			got.ParkWait != tc.want.ParkWait || got.Poll != tc.want.Poll || got.Batch != tc.want.Batch || got.Lease != tc.want.Lease {
			t.Errorf("%v: inbox config %+v, want %+v", tc.env, got, tc.want)
		}
	}
}
