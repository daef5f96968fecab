package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/mongostore"
)

// setting is one configuration value: an environment variable, the flag that overrides it,
// its default and what it is for.
type setting struct {
	env, flag, def, usage string
	dst                   *string
}

// Config is the standalone server's configuration, from the original application's
// environment variables and their flags. Empty values select the embedded defaults.
type Config struct {
	MongoURI, MongoDB                                string
	MongoMoney, MongoCurrency, MongoReferences       string
	DatabaseURL, DatabaseSchema                      string
	EnableScheduler                                  string
	SMTPHost, SMTPPort, SMTPUser, SMTPPassword       string
	SMTPFrom, SMTPTLS                                string
	AlertEmail                                       string
	AlertWebhookURL, AlertWebhookSecret              string
	ReferenceSecret                                  string
	StripeSecretKey, StripeWebhookSecret             string
	StripePrices, PayPalPlans, MercadoPagoPlans      string
	FrontendURL, PublicURL                           string
	MercadoPagoAccessToken, MercadoPagoWebhookSecret string
	PayPalClientID, PayPalClientSecret               string
	PayPalWebhookID, PayPalMode                      string
	AdminToken                                       string
	SchedulerTimezone                                string
	HTTPAddr                                         string
	OutboxDir                                        string
	DemoData                                         string
	ClaimLease                                       string
	JobLockTTL                                       string
	InboxLease                                       string
	InboxBackoff, InboxConcurrency                   string
	InboxMaxAttempts, InboxParkWait                  string
	InboxPoll, InboxBatch                            string

	// Parsed forms, filled by parse.
	schedulerOn bool
	adminURL    string // the dashboard's jobs pages, for the run link in operator alerts
	location    *time.Location
	smtpPort    int
	demo        bool
	claimLease  time.Duration // zero: billing's default
	jobLockTTL  time.Duration // zero: the scheduler's default
	inboxLease  time.Duration // zero: billing's default
	// inboxBackoff and inboxConcurrency: the inbox worker's retry waits and parallelism;
	// nil and zero: billing's defaults.
	inboxBackoff     []time.Duration
	inboxConcurrency int
	// inboxMaxAttempts, inboxParkWait, inboxPoll and inboxBatch: when a failed event ends
	// dead, when a parked one ends ignored, the idle worker's poll and its claim size;
	// zero: billing's defaults.
	inboxMaxAttempts int
	inboxParkWait    time.Duration
	inboxPoll        time.Duration
	inboxBatch       int
	mongo            mongostore.Config // MONGODB_MONEY, MONGODB_DEFAULT_CURRENCY, MONGODB_REFERENCES
	// Gateway plan maps (gateway price or plan id -> renewkit plan id), parsed.
	stripePrices, paypalPlans, mercadoPagoPlans map[string]string

	// Seams for tests, never set from the environment or flags.
	grace     time.Duration // shutdown grace; zero: shutdownGrace
	extraJobs []billing.Job // scheduled after the five billing jobs
	gaugeTTL  time.Duration // how long scrapes reuse the gauges' store reading; zero: gaugeTTL
	onServe   func(*app)    // called once the server accepts connections
}

// shutdownGrace returns how long running jobs and requests may take to finish.
func (c *Config) shutdownGrace() time.Duration {
	if c.grace > 0 {
		return c.grace
	}
	return shutdownGrace
}

func (c *Config) settings() []setting {
	return []setting{
		{env: "MONGODB_URI", flag: "mongodb-uri", usage: "MongoDB connection string; empty: in-memory store with demo data", dst: &c.MongoURI},
		{env: "MONGODB_DB", flag: "mongodb-db", def: "renewkit", usage: "MongoDB database name", dst: &c.MongoDB},
		{env: "DATABASE_URL", flag: "database-url", usage: "PostgreSQL connection string (postgres://...): selects the PostgreSQL store, migrated on start; not with MONGODB_URI", dst: &c.DatabaseURL},
		{env: "DATABASE_SCHEMA", flag: "database-schema", def: "renewkit", usage: "PostgreSQL schema holding renewkit's tables", dst: &c.DatabaseSchema},
		{env: "MONGODB_MONEY", flag: "mongodb-money", def: "minor", usage: "how plans' price and payments' amount are stored: minor (integers of cents, 4990) or major (floats of reais, 49.9, as the original app writes them)", dst: &c.MongoMoney},
		{env: "MONGODB_DEFAULT_CURRENCY", flag: "mongodb-default-currency", usage: "currency of plans and payments stored without one (BRL for the original app); empty: none", dst: &c.MongoCurrency},
		{env: "MONGODB_REFERENCES", flag: "mongodb-references", def: "string", usage: "how new user_id/plan_id/subscription_id references are stored: string (as the original app) or objectid; stored ones keep their type", dst: &c.MongoReferences},
		{env: "ENABLE_SCHEDULER", flag: "enable-scheduler", def: "true", usage: "run the five jobs on their schedules (true/false)", dst: &c.EnableScheduler},
		{env: "SCHEDULER_TIMEZONE", flag: "scheduler-timezone", def: "America/Sao_Paulo", usage: "IANA time zone the job schedules are read in", dst: &c.SchedulerTimezone},
		{env: "SMTP_HOST", flag: "smtp-host", usage: "SMTP server; empty: emails are logged and written as .eml files", dst: &c.SMTPHost},
		{env: "SMTP_PORT", flag: "smtp-port", def: "587", usage: "SMTP port (465 implicit TLS, 587 STARTTLS)", dst: &c.SMTPPort},
		{env: "SMTP_USER", flag: "smtp-user", usage: "SMTP user name", dst: &c.SMTPUser},
		{env: "SMTP_PASSWORD", flag: "smtp-password", usage: "SMTP password", dst: &c.SMTPPassword},
		{env: "SMTP_FROM", flag: "smtp-from", def: "noreply@example.com", usage: "sender address", dst: &c.SMTPFrom},
		{env: "SMTP_TLS", flag: "smtp-tls", usage: "starttls, implicit, opportunistic or none; empty: implicit on port 465, starttls otherwise", dst: &c.SMTPTLS},
		{env: "ALERT_EMAIL", flag: "alert-email", usage: "where operator alerts (a job failing repeatedly) go; empty: SMTP_FROM", dst: &c.AlertEmail},
		{env: "ALERT_WEBHOOK_URL", flag: "alert-webhook-url", usage: "also POST operator alerts here, signed (X-Renewkit-Signature, HMAC-SHA256 with ALERT_WEBHOOK_SECRET); alerts that email is down go only here", dst: &c.AlertWebhookURL},
		{env: "RENEWKIT_REFERENCE_SECRET", flag: "reference-secret", usage: "HMAC key (at least 16 bytes) signing the references that bind a checkout or gateway subscription to a user and plan (billing.Config.ReferenceSecret); empty: webhooks never create subscriptions from gateway data", dst: &c.ReferenceSecret},
		{env: "ALERT_WEBHOOK_SECRET", flag: "alert-webhook-secret", usage: "HMAC key signing ALERT_WEBHOOK_URL requests, at least 16 bytes", dst: &c.AlertWebhookSecret},
		{env: "OUTBOX_DIR", flag: "outbox-dir", def: "outbox", usage: "where the log notifier writes .eml files when SMTP is off", dst: &c.OutboxDir},
		{env: "FRONTEND_URL", flag: "frontend-url", def: "http://localhost:3000", usage: "base URL of the product, for links in emails", dst: &c.FrontendURL},
		{env: "PUBLIC_URL", flag: "public-url", usage: "base URL operators reach this server at, for the dashboard link in operator alerts; empty: http://localhost and the HTTP_ADDR port", dst: &c.PublicURL},
		{env: "STRIPE_SECRET_KEY", flag: "stripe-secret-key", usage: "Stripe API key (renewal lookups)", dst: &c.StripeSecretKey},
		{env: "STRIPE_WEBHOOK_SECRET", flag: "stripe-webhook-secret", usage: "Stripe webhook signing secret; set: mounts /api/payments/stripe/webhook", dst: &c.StripeWebhookSecret},
		{env: "STRIPE_PRICES", flag: "stripe-prices", usage: "which renewkit plan each Stripe price buys: price_id=plan_id pairs separated by commas (stripegw.Config.Prices); a subscription with an unmapped price is refused", dst: &c.StripePrices},
		{env: "MERCADOPAGO_ACCESS_TOKEN", flag: "mercadopago-access-token", usage: "Mercado Pago access token", dst: &c.MercadoPagoAccessToken},
		{env: "MERCADOPAGO_WEBHOOK_SECRET", flag: "mercadopago-webhook-secret", usage: "Mercado Pago webhook secret; set: mounts /api/payments/mercadopago/webhook", dst: &c.MercadoPagoWebhookSecret},
		{env: "MERCADOPAGO_PLANS", flag: "mercadopago-plans", usage: "which renewkit plan each Mercado Pago preapproval plan buys: preapproval_plan_id=plan_id pairs separated by commas (mercadopagogw.Config.Plans)", dst: &c.MercadoPagoPlans},
		{env: "PAYPAL_CLIENT_ID", flag: "paypal-client-id", usage: "PayPal REST client id", dst: &c.PayPalClientID},
		{env: "PAYPAL_CLIENT_SECRET", flag: "paypal-client-secret", usage: "PayPal REST client secret", dst: &c.PayPalClientSecret},
		{env: "PAYPAL_WEBHOOK_ID", flag: "paypal-webhook-id", usage: "PayPal webhook id; set with the client credentials: mounts /api/payments/paypal/webhook", dst: &c.PayPalWebhookID},
		{env: "PAYPAL_PLANS", flag: "paypal-plans", usage: "which renewkit plan each PayPal plan buys: P-...=plan_id pairs separated by commas (paypalgw.Config.Plans)", dst: &c.PayPalPlans},
		{env: "PAYPAL_MODE", flag: "paypal-mode", def: "sandbox", usage: "PayPal environment: sandbox or live", dst: &c.PayPalMode},
		{env: "ADMIN_TOKEN", flag: "admin-token", usage: "bearer token for /api/admin and /admin; empty: a random one is printed at start", dst: &c.AdminToken},
		{env: "HTTP_ADDR", flag: "http-addr", def: ":8000", usage: "listen address", dst: &c.HTTPAddr},
		{env: "CLAIM_LEASE", flag: "claim-lease", usage: "how long a job run holds the records it claimed and the emails it reserved (renewed while it works), and how long the payment processor's locks last; after a crash they wait this long; empty: the library default (2m)", dst: &c.ClaimLease},
		{env: "INBOX_LEASE", flag: "inbox-lease", usage: "how long the webhook inbox worker holds the events it claimed (renewed while it works); after a crash they wait this long; empty: the library default (1m)", dst: &c.InboxLease},
		{env: "INBOX_BACKOFF", flag: "inbox-backoff", usage: "the waits before each retry of a webhook event that failed or waits for an object not there yet, separated by commas: the n-th retry waits the n-th, the last repeats (like 1m,5m,30m,2h); empty: the library default (1m,5m,30m,2h,6h,12h,24h)", dst: &c.InboxBackoff},
		{env: "INBOX_CONCURRENCY", flag: "inbox-concurrency", usage: "how many gateway objects (subscriptions, payments) the webhook inbox worker applies events of at once, 1 to 256; events of one object are always applied one at a time, in order; empty: the library default (8)", dst: &c.InboxConcurrency},
		{env: "INBOX_MAX_ATTEMPTS", flag: "inbox-max-attempts", usage: "how many times the webhook inbox worker attempts a failing event before it ends dead, a whole number from 1 to 1000; empty: the library default (10)", dst: &c.InboxMaxAttempts},
		{env: "INBOX_PARK_WAIT", flag: "inbox-park-wait", usage: "how long a webhook event waiting for an object not there yet is kept before it ends ignored (unknown object), a duration of a minute or more (like 72h); empty: the library default (72h)", dst: &c.InboxParkWait},
		{env: "INBOX_POLL", flag: "inbox-poll", usage: "how often the idle webhook inbox worker looks for due events, a duration from 10ms to 1h (like 1s); events this server accepts wake it at once; empty: the library default (1s)", dst: &c.InboxPoll},
		{env: "INBOX_BATCH", flag: "inbox-batch", usage: "how many webhook events the inbox worker claims at a time, a whole number from 1 to 1000; empty: the library default (64)", dst: &c.InboxBatch},
		{env: "JOB_LOCK_TTL", flag: "job-lock-ttl", usage: "how long a job's run lock lasts between renewals across replicas; after a crash the job waits this long; empty: the scheduler's default (1m)", dst: &c.JobLockTTL},
		{env: "DEMO_DATA", flag: "demo-data", def: "auto", usage: "load demo plans, users and subscriptions: auto (only with the in-memory store), true, false", dst: &c.DemoData},
	}
}

// loadConfig reads the environment, then the flags in args (flags win), and validates.
func loadConfig(args []string, getenv func(string) string, usageOut io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	sets := c.settings()
	for _, s := range sets {
		v := getenv(s.env)
		if v == "" {
			v = s.def
		}
		fs.StringVar(s.dst, s.flag, v, s.usage+" (env "+s.env+")")
	}
	fs.Usage = func() {
		fmt.Fprintf(usageOut, "Usage: standalone [-once] [flags]\n\n"+
			"  -once   run the five jobs once on demo data, print their results and exit\n\n"+
			"Every other flag can be set by its environment variable instead. Defaults:\n\n")
		for _, s := range sets {
			def := s.def
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(usageOut, "  -%-28s %-28s default %s\n      %s\n", s.flag, s.env, def, s.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return c, c.parse()
}

// parse validates the values and fills the parsed fields. Each problem names its variable.
func (c *Config) parse() error {
	var errs []error
	bad := func(env, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, a...)))
	}
	switch strings.ToLower(c.EnableScheduler) {
	case "true", "1", "yes", "on":
		c.schedulerOn = true
	case "false", "0", "no", "off":
	default:
		bad("ENABLE_SCHEDULER", "%q is not true or false", c.EnableScheduler)
	}
	loc, err := time.LoadLocation(c.SchedulerTimezone)
	if err != nil || c.SchedulerTimezone == "" {
		bad("SCHEDULER_TIMEZONE", "%q is not an IANA time zone (like America/Sao_Paulo or UTC)", c.SchedulerTimezone)
	}
	c.location = loc
	if c.MongoURI != "" {
		if !isURL(c.MongoURI, "mongodb", "mongodb+srv") {
			bad("MONGODB_URI", "not a mongodb:// or mongodb+srv:// URI")
		}
		if c.MongoDB == "" {
			bad("MONGODB_DB", "empty: name the database")
		}
		switch strings.ToLower(c.MongoMoney) {
		case "minor":
			c.mongo.Money = mongostore.MoneyMinorUnits
		case "major":
			c.mongo.Money = mongostore.MoneyMajorUnits
		default:
			bad("MONGODB_MONEY", "%q is not minor or major", c.MongoMoney)
		}
		switch strings.ToLower(c.MongoReferences) {
		case "string":
			c.mongo.References = mongostore.ReferencesString
		case "objectid":
			c.mongo.References = mongostore.ReferencesObjectID
		default:
			bad("MONGODB_REFERENCES", "%q is not string or objectid", c.MongoReferences)
		}
		c.mongo.DefaultCurrency = c.MongoCurrency
		if err := c.mongo.Validate(); err != nil {
			bad("MONGODB_DEFAULT_CURRENCY", "%v", err)
		}
	}
	if c.DatabaseURL != "" {
		if !isURL(c.DatabaseURL, "postgres", "postgresql") {
			bad("DATABASE_URL", "not a postgres:// or postgresql:// URI with a host")
		}
		if c.MongoURI != "" {
			bad("DATABASE_URL", "set together with MONGODB_URI: choose one store (DATABASE_URL for PostgreSQL, MONGODB_URI for MongoDB)")
		}
	}
	if c.SMTPHost != "" {
		p, err := strconv.Atoi(c.SMTPPort)
		if err != nil || p <= 0 || p > 65535 {
			bad("SMTP_PORT", "%q is not a port number", c.SMTPPort)
		}
		c.smtpPort = p
		switch strings.ToLower(c.SMTPTLS) {
		case "", "starttls", "implicit", "opportunistic", "none":
		default:
			bad("SMTP_TLS", "%q is not starttls, implicit, opportunistic or none", c.SMTPTLS)
		}
		if !strings.Contains(c.SMTPFrom, "@") {
			bad("SMTP_FROM", "%q is not an email address", c.SMTPFrom)
		}
	}
	if !isURL(c.FrontendURL, "http", "https") {
		bad("FRONTEND_URL", "%q is not an http(s) URL", c.FrontendURL)
	}
	switch c.PayPalMode {
	case "sandbox", "live":
	default:
		bad("PAYPAL_MODE", "%q is not sandbox or live", c.PayPalMode)
	}
	if c.PayPalWebhookID != "" && (c.PayPalClientID == "" || c.PayPalClientSecret == "") {
		bad("PAYPAL_CLIENT_ID", "PAYPAL_WEBHOOK_ID is set: PayPal verification also needs PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET")
	}
	if c.MercadoPagoWebhookSecret != "" && c.MercadoPagoAccessToken == "" {
		bad("MERCADOPAGO_ACCESS_TOKEN", "MERCADOPAGO_WEBHOOK_SECRET is set, but payments are read from the API, which needs the access token")
	}
	switch {
	case c.AlertWebhookURL == "" && c.AlertWebhookSecret != "":
		bad("ALERT_WEBHOOK_URL", "empty, but ALERT_WEBHOOK_SECRET is set: name the URL that receives operator alerts")
	case c.AlertWebhookURL != "":
		if !isURL(c.AlertWebhookURL, "http", "https") {
			bad("ALERT_WEBHOOK_URL", "not an absolute http(s) URL")
		}
		if len(c.AlertWebhookSecret) < 16 {
			bad("ALERT_WEBHOOK_SECRET", "set ALERT_WEBHOOK_URL needs a signing secret of at least 16 bytes (e.g. openssl rand -hex 32)")
		}
	}
	for _, m := range []struct {
		env, val string
		dst      *map[string]string
	}{{"STRIPE_PRICES", c.StripePrices, &c.stripePrices}, {"PAYPAL_PLANS", c.PayPalPlans, &c.paypalPlans},
		{"MERCADOPAGO_PLANS", c.MercadoPagoPlans, &c.mercadoPagoPlans}} {
		pairs, err := parsePlanMap(m.val)
		if err != nil {
			bad(m.env, "%v", err)
		}
		*m.dst = pairs
	}
	if c.ReferenceSecret != "" && len(c.ReferenceSecret) < 16 {
		bad("RENEWKIT_REFERENCE_SECRET", "shorter than 16 bytes: use a random secret (e.g. openssl rand -hex 32)")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("ADMIN_TOKEN", "too short: use at least 16 characters")
	}
	switch strings.ToLower(c.DemoData) {
	case "auto":
		c.demo = c.MongoURI == "" && c.DatabaseURL == ""
	case "true", "1", "yes":
		c.demo = true
	case "false", "0", "no":
	default:
		bad("DEMO_DATA", "%q is not auto, true or false", c.DemoData)
	}
	for _, d := range []struct {
		env, val string
		dst      *time.Duration
		min, max time.Duration // max 0: no upper bound
		want     string
	}{
		{"CLAIM_LEASE", c.ClaimLease, &c.claimLease, time.Second, 0, "a duration of a second or more, like 2m"},
		{"JOB_LOCK_TTL", c.JobLockTTL, &c.jobLockTTL, time.Second, 0, "a duration of a second or more, like 2m"},
		{"INBOX_LEASE", c.InboxLease, &c.inboxLease, time.Second, 0, "a duration of a second or more, like 2m"},
		{"INBOX_PARK_WAIT", c.InboxParkWait, &c.inboxParkWait, time.Minute, 0, "a duration of a minute or more, like 72h"},
		{"INBOX_POLL", c.InboxPoll, &c.inboxPoll, 10 * time.Millisecond, time.Hour, "a duration from 10ms to 1h, like 1s"},
	} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(strings.TrimSpace(d.val))
		if err != nil || v < d.min || d.max > 0 && v > d.max {
			bad(d.env, "%q is not %s", d.val, d.want)
			continue
		}
		*d.dst = v
	}
	if c.InboxBackoff != "" {
		c.inboxBackoff = nil
		for _, part := range strings.Split(c.InboxBackoff, ",") {
			v, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || v < time.Second {
				bad("INBOX_BACKOFF", "%q is not a duration of a second or more: list durations separated by commas, like 1m,5m,30m,2h", strings.TrimSpace(part))
				break
			}
			c.inboxBackoff = append(c.inboxBackoff, v)
		}
	}
	for _, n := range []struct {
		env, val string
		dst      *int
		max      int
	}{
		{"INBOX_CONCURRENCY", c.InboxConcurrency, &c.inboxConcurrency, 256},
		{"INBOX_MAX_ATTEMPTS", c.InboxMaxAttempts, &c.inboxMaxAttempts, 1000},
		{"INBOX_BATCH", c.InboxBatch, &c.inboxBatch, 1000},
	} {
		if n.val == "" {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(n.val))
		if err != nil || v < 1 || v > n.max {
			bad(n.env, "%q is not a whole number from 1 to %d", n.val, n.max)
			continue
		}
		*n.dst = v
	}
	if c.HTTPAddr == "" {
		bad("HTTP_ADDR", "empty: use host:port such as :8000")
	}
	switch public := strings.TrimRight(c.PublicURL, "/"); {
	case public != "":
		if u, err := url.Parse(public); err != nil || !isURL(public, "http", "https") || u.RawQuery != "" || u.Fragment != "" {
			bad("PUBLIC_URL", "%q is not an http(s) URL without query or fragment, like https://jobs.example.com", c.PublicURL)
		}
		c.adminURL = public + "/admin/jobs"
	default:
		host, port, err := net.SplitHostPort(c.HTTPAddr)
		if err != nil {
			break // serve reports HTTP_ADDR when it cannot listen
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.adminURL = "http://" + net.JoinHostPort(host, port) + "/admin/jobs"
	}
	return errors.Join(errs...)
}

// isURL reports whether raw is an absolute URL with a host and one of schemes.
func isURL(raw string, schemes ...string) bool {
	u, err := url.Parse(raw)
	return err == nil && slices.Contains(schemes, u.Scheme) && u.Host != ""
}

// parsePlanMap reads "gateway_id=plan_id,gateway_id=plan_id" into a map; empty is none.
func parsePlanMap(v string) (map[string]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		gid, plan, ok := strings.Cut(strings.TrimSpace(pair), "=")
		gid, plan = strings.TrimSpace(gid), strings.TrimSpace(plan)
		switch {
		case !ok || gid == "" || plan == "":
			return nil, fmt.Errorf("%q is not gateway_id=plan_id", pair)
		case out[gid] != "":
			return nil, fmt.Errorf("%q is mapped twice", gid)
		}
		out[gid] = plan
	}
	return out, nil
}
