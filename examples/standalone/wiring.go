package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/mercadopagogw"
	"github.com/renewkit/renewkit/gateways/paypalgw"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/scheduler/dashboard"
	"github.com/renewkit/renewkit/store/mongostore"
)

// openMongo connects to MONGODB_URI, checks the server answers and creates the indexes.
func (a *app) openMongo(ctx context.Context) (billing.Store, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(a.cfg.MongoURI).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: MONGODB_URI: %w", err)
	}
	a.closers = append(a.closers, client.Disconnect)
	st, err := mongostore.New(client.Database(a.cfg.MongoDB), a.cfg.mongo)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		return nil, fmt.Errorf("invalid configuration: MONGODB_URI: server not reachable: %w", err)
	}
	if err := st.EnsureIndexes(pctx); err != nil {
		return nil, fmt.Errorf("MONGODB_DB %q: creating indexes: %w", a.cfg.MongoDB, err)
	}
	a.features = append(a.features, "store: MongoDB database "+a.cfg.MongoDB)
	return st, nil
}

// webhookBuilder builds a gateway's webhook handler once the service exists.
type webhookBuilder func(svc *billing.Service) (http.Handler, error)

// gateways returns the renewal lookups and the webhook handler builders of the configured
// gateways. A gateway's webhook is mounted only when its secret is set.
func (a *app) gateways(clock billing.Clock) (map[string]billing.RenewalLookup, map[string]webhookBuilder, error) {
	c := a.cfg
	renewals := map[string]billing.RenewalLookup{}
	hooks := map[string]webhookBuilder{}
	on := func(s string) { a.features = append(a.features, s) }

	if c.StripeSecretKey != "" || c.StripeWebhookSecret != "" {
		sc := stripegw.Config{SecretKey: c.StripeSecretKey, WebhookSecret: c.StripeWebhookSecret, Prices: c.stripePrices}
		if c.StripeSecretKey != "" {
			l, err := stripegw.NewRenewalLookup(sc)
			if err != nil {
				return nil, nil, fmt.Errorf("invalid configuration: STRIPE_SECRET_KEY: %w", err)
			}
			renewals[billing.GatewayStripe] = l
		}
		if c.StripeWebhookSecret != "" {
			hooks[billing.GatewayStripe] = func(svc *billing.Service) (http.Handler, error) {
				hc := sc
				hc.Clock, hc.Logger = clock, a.log
				return stripegw.NewWebhookHandler(svc.Processor(), hc)
			}
		}
	}
	on(fmt.Sprintf("stripe: renewals %s, webhook %s", onOff(c.StripeSecretKey), onOff(c.StripeWebhookSecret)))

	if c.MercadoPagoAccessToken != "" {
		mc := mercadopagogw.Config{AccessToken: c.MercadoPagoAccessToken, WebhookSecret: c.MercadoPagoWebhookSecret, Plans: c.mercadoPagoPlans}
		l, err := mercadopagogw.NewRenewalLookup(mc)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid configuration: MERCADOPAGO_ACCESS_TOKEN: %w", err)
		}
		renewals[billing.GatewayMercadoPago] = l
		if c.MercadoPagoWebhookSecret != "" {
			hooks[billing.GatewayMercadoPago] = func(svc *billing.Service) (http.Handler, error) {
				hc := mc
				hc.Clock, hc.Logger = clock, a.log
				return mercadopagogw.NewWebhookHandler(svc.Processor(), hc)
			}
		}
	}
	on(fmt.Sprintf("mercadopago: renewals %s, webhook %s", onOff(c.MercadoPagoAccessToken), onOff(c.MercadoPagoWebhookSecret)))

	if c.PayPalClientID != "" && c.PayPalClientSecret != "" {
		mode := paypalgw.ModeSandbox
		if c.PayPalMode == "live" {
			mode = paypalgw.ModeLive
		}
		pc := paypalgw.Config{ClientID: c.PayPalClientID, ClientSecret: c.PayPalClientSecret, WebhookID: c.PayPalWebhookID, Mode: mode, Plans: c.paypalPlans}
		l, err := paypalgw.NewRenewalLookup(pc)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid configuration: PAYPAL_CLIENT_ID: %w", err)
		}
		renewals[billing.GatewayPayPal] = l
		if c.PayPalWebhookID != "" {
			hooks[billing.GatewayPayPal] = func(svc *billing.Service) (http.Handler, error) {
				hc := pc
				hc.Clock, hc.Logger = clock, a.log
				return paypalgw.NewWebhookHandler(svc.Processor(), hc)
			}
		}
	}
	on(fmt.Sprintf("paypal: renewals %s, webhook %s", onOff(c.PayPalClientSecret), onOff(c.PayPalWebhookID)))

	if c.demo {
		renewals[demoGateway] = demoLookup{store: a.store, clock: clock}
	}
	return renewals, hooks, nil
}

func onOff(v string) string {
	if v == "" {
		return "off"
	}
	return "on"
}

// analytics feeds the dashboard's analytics figures.
func (a *app) analytics(ctx context.Context) ([]dashboard.Figure, error) {
	an, err := a.svc.Analytics(ctx)
	if err != nil {
		return nil, err
	}
	figs := []dashboard.Figure{
		{Label: "renewals, 7 days", Value: fmt.Sprint(an.Renewals7d)},
		{Label: "renewals, 30 days", Value: fmt.Sprint(an.Renewals30d)},
		{Label: "expirations, 7 days", Value: fmt.Sprint(an.Expirations7d)},
		{Label: "expirations, 30 days", Value: fmt.Sprint(an.Expirations30d)},
		{Label: "expiring in 3 days", Value: fmt.Sprint(an.Expiring3d)},
		{Label: "expiring in 7 days", Value: fmt.Sprint(an.Expiring7d)},
	}
	churn := "—"
	if an.ChurnRate30d != nil {
		churn = fmt.Sprintf("%.1f%%", *an.ChurnRate30d*100)
	}
	figs = append(figs, dashboard.Figure{Label: "churn, 30 days", Value: churn})
	for _, cur := range slices.Sorted(maps.Keys(an.MRR)) {
		figs = append(figs, dashboard.Figure{Label: "MRR " + cur, Value: notify.FormatMoney(billing.Money{Amount: an.MRR[cur], Currency: cur}, "en")})
	}
	return figs, nil
}
