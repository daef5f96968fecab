package stripegw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
)

// api is the part of the Stripe API renewkit reads, through stripe-go's client.API on the
// configured backend URL and HTTP client. Objects come back in the API version stripe-go
// v76 pins (2023-10-16), whatever version the account's webhooks use.
type api struct {
	c *client.API
}

func newAPI(cfg Config, log *slog.Logger) *api {
	bc := &stripe.BackendConfig{
		URL:           stripe.String(cfg.BaseURL),
		HTTPClient:    cfg.HTTPClient,
		LeveledLogger: slogLeveled{log},
	}
	switch {
	case cfg.MaxNetworkRetries < 0:
		bc.MaxNetworkRetries = stripe.Int64(0)
	case cfg.MaxNetworkRetries > 0:
		bc.MaxNetworkRetries = stripe.Int64(int64(cfg.MaxNetworkRetries))
	}
	return &api{c: client.New(cfg.SecretKey, stripe.NewBackendsWithConfig(bc))}
}

func (a *api) subscription(ctx context.Context, id string) (*wireSubscription, error) {
	p := &stripe.SubscriptionParams{}
	p.Context = ctx
	p.AddExpand("latest_invoice")
	p.AddExpand("latest_invoice.payment_intent")
	s, err := a.c.Subscriptions.Get(id, p)
	if err != nil {
		return nil, apiError("retrieve subscription", id, err)
	}
	return fromSDKSubscription(s), nil
}

func (a *api) invoice(ctx context.Context, id string) (*wireInvoice, error) {
	p := &stripe.InvoiceParams{}
	p.Context = ctx
	p.AddExpand("payment_intent")
	inv, err := a.c.Invoices.Get(id, p)
	if err != nil {
		return nil, apiError("retrieve invoice", id, err)
	}
	return fromSDKInvoice(inv), nil
}

func (a *api) checkoutSession(ctx context.Context, id string) (*wireCheckoutSession, error) {
	p := &stripe.CheckoutSessionParams{}
	p.Context = ctx
	s, err := a.c.CheckoutSessions.Get(id, p)
	if err != nil {
		return nil, apiError("retrieve checkout session", id, err)
	}
	w := &wireCheckoutSession{
		ID: s.ID, Object: s.Object, Mode: string(s.Mode), PaymentStatus: string(s.PaymentStatus),
		ClientReferenceID: s.ClientReferenceID, Metadata: s.Metadata, AmountTotal: s.AmountTotal, Currency: string(s.Currency),
	}
	if s.Subscription != nil {
		w.Subscription = ref(s.Subscription.ID)
	}
	if s.Invoice != nil {
		w.Invoice = ref(s.Invoice.ID)
	}
	if s.PaymentIntent != nil {
		w.PaymentIntent = ref(s.PaymentIntent.ID)
	}
	return w, nil
}

func fromSDKSubscription(s *stripe.Subscription) *wireSubscription {
	w := &wireSubscription{
		ID: s.ID, Object: s.Object, Status: string(s.Status), CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		CurrentPeriodStart: s.CurrentPeriodStart, CurrentPeriodEnd: s.CurrentPeriodEnd, Metadata: s.Metadata,
	}
	if s.Items != nil {
		for _, it := range s.Items.Data {
			if it == nil {
				continue
			}
			var wi wireItem
			if it.Price != nil {
				wi.Price.ID = it.Price.ID
			}
			w.Items.Data = append(w.Items.Data, wi)
		}
	}
	if s.LatestInvoice != nil {
		w.LatestInvoice = ref(s.LatestInvoice.ID)
		if s.LatestInvoice.Object == "invoice" || s.LatestInvoice.Status != "" {
			w.latest = fromSDKInvoice(s.LatestInvoice)
		}
	}
	return w
}

func fromSDKInvoice(inv *stripe.Invoice) *wireInvoice {
	w := &wireInvoice{
		ID: inv.ID, Object: inv.Object, Status: string(inv.Status), Paid: inv.Paid, Currency: string(inv.Currency),
		AmountPaid: inv.AmountPaid, AmountDue: inv.AmountDue, AttemptCount: inv.AttemptCount, BillingReason: string(inv.BillingReason),
	}
	if inv.Subscription != nil {
		w.Subscription = ref(inv.Subscription.ID)
	}
	if inv.StatusTransitions != nil {
		w.StatusTransitions.PaidAt = inv.StatusTransitions.PaidAt
	}
	if inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if l == nil {
				continue
			}
			wl := wireLine{Type: string(l.Type), Proration: l.Proration}
			if l.Subscription != nil {
				wl.Subscription = ref(l.Subscription.ID)
			}
			if l.Period != nil {
				wl.Period = wirePeriod{Start: l.Period.Start, End: l.Period.End}
			}
			w.Lines.Data = append(w.Lines.Data, wl)
		}
	}
	if pi := inv.PaymentIntent; pi != nil && pi.LastPaymentError != nil {
		e := pi.LastPaymentError
		w.failureCode = string(e.DeclineCode)
		if w.failureCode == "" {
			w.failureCode = string(e.Code)
		}
		w.failureMessage = e.Msg
	}
	return w
}

// apiError turns an SDK error into an *APIError.
func apiError(op, id string, err error) error {
	ae := &gateways.APIError{Gateway: billing.GatewayStripe, Op: op, ID: id, Err: err, Retryable: true}
	var se *stripe.Error
	if errors.As(err, &se) {
		ae.StatusCode, ae.Code, ae.RequestID = se.HTTPStatusCode, string(se.Code), se.RequestID
		ae.Retryable = retryableStatus(se.HTTPStatusCode)
		ae.Err = stripeAnswer{err} // Stripe's message can echo the key it was given
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		ae.Retryable = true
	}
	return ae
}

// stripeAnswer is an error Stripe answered: reachable (errors.As finds the *stripe.Error),
// but its message, which can quote the API key sent ("Invalid API Key provided: ..."), is
// never printed; the status, code and request id in the APIError say what happened.
type stripeAnswer struct{ err error }

func (a stripeAnswer) Error() string { return "stripe answered with an error" }
func (a stripeAnswer) Unwrap() error { return a.err }

// retryableStatus: 0 (no answer), 409 (lock timeout), 429 and 5xx can succeed later.
func retryableStatus(code int) bool {
	return code == 0 || code == http.StatusConflict || code == http.StatusTooManyRequests || code >= 500
}

// slogLeveled adapts slog to stripe-go's LeveledLoggerInterface. The SDK's messages name
// requests and error bodies, never the API key; they go out at debug level, since
// renewkit logs the outcome itself.
type slogLeveled struct{ log *slog.Logger }

func (l slogLeveled) Debugf(format string, v ...interface{}) { l.logf(format, v...) }
func (l slogLeveled) Infof(format string, v ...interface{})  { l.logf(format, v...) }
func (l slogLeveled) Warnf(format string, v ...interface{})  { l.logf(format, v...) }
func (l slogLeveled) Errorf(format string, v ...interface{}) { l.logf(format, v...) }

func (l slogLeveled) logf(format string, v ...interface{}) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("stripe-go: " + fmt.Sprintf(format, v...))
	}
}
