package paypalgw

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// reversalAPI serves GET /v1/payments/sale/SALE-1 (a 19.90 USD charge of the test
// subscription made at saleTime) in the state state holds, and GET /v1/payments/refund/RF-1.
func reversalAPI(t *testing.T, api *apiServer, saleTime time.Time, state *atomic.Value) {
	inner := api.Config.Handler
	api.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/payments/sale/SALE-1":
			_, _ = w.Write([]byte(`{"id":"SALE-1","state":"` + state.Load().(string) + `","amount":{"total":"19.90","currency":"USD"},` +
				`"billing_agreement_id":"` + testSubID + `","create_time":"` + ts(saleTime) + `","update_time":"` + ts(saleTime) + `"}`))
		case "/v1/payments/refund/RF-1":
			_, _ = w.Write([]byte(`{"id":"RF-1","sale_id":"SALE-1","state":"completed","amount":{"total":"5.00","currency":"USD"},` +
				`"total_refunded_amount":{"value":"5.00","currency":"USD"}}`))
		default:
			inner.ServeHTTP(w, r)
		}
	})
}

// newSaleEnv is a strict env with API credentials whose subscription was activated three
// hours before now and paid by SALE-1 two hours before now, both events delivered. The API
// reports the sale in the state the returned value holds, completed at first.
func newSaleEnv(t *testing.T, now time.Time) (*env, *atomic.Value) {
	api := newAPIServer(t)
	saleTime := now.Add(-2 * time.Hour)
	state := new(atomic.Value)
	state.Store("completed")
	reversalAPI(t, api, saleTime, state)
	api.nextBilling, api.updated = now.AddDate(0, 1, 0), now.Add(-3*time.Hour)
	e := newStrictEnv(t, now, func(c *Config) { c.ClientID, c.ClientSecret, c.BaseURL = "client-id", "client-secret", api.URL })
	e.mustDeliver(activated(t, "WH-ACT", now.Add(-3*time.Hour)))
	e.mustDeliver(saleEvent(t, "WH-SALE", "SALE-1", saleTime, "19.90"))
	return e, state
}

func refundEvent(eventType, eventID string, at time.Time, total string) []byte {
	return []byte(`{"id":"` + eventID + `","event_version":"1.0","create_time":"` + ts(at) + `","resource_type":"refund",` +
		`"event_type":"` + eventType + `","resource":{"id":"RF-1","sale_id":"SALE-1","state":"completed",` +
		`"amount":{"total":"` + total + `","currency":"USD"},"create_time":"` + ts(at) + `"}}`)
}

// Proves: PAYMENT.SALE.REFUNDED is applied as the PayPal API reports the sale: a body
// claiming a full refund of a sale the API calls partially_refunded records only the
// refund's 5.00 and keeps access; once the API reports the sale refunded, the payment is
// refunded, access ends and one payment_reversed email goes out; a redelivery (new event id)
// sends nothing more; PAYMENT.SALE.REVERSED of the refunded sale changes nothing.
func TestSaleRefundedReadFromAPI(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e, state := newSaleEnv(t, now)
	ctx := context.Background()
	pay := func() billing.Payment {
		p, err := e.store.FindPaymentByGateway(ctx, billing.GatewayPayPal, "SALE-1")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	access := func() bool { u, _ := e.store.GetUser(ctx, testUser); return u.HasAccess(now) }
	if pay().Status != billing.PaymentStatusApproved || !access() {
		t.Fatalf("sale not applied: %+v", pay())
	}
	state.Store("partially_refunded")
	e.mustDeliver(refundEvent(EventSaleRefunded, "WH-RF-PART", now, "19.90"))
	if p := pay(); p.Status != billing.PaymentStatusApproved || p.RefundedAmount != 500 || !access() {
		t.Fatalf("partial refund: payment %+v access %v, want approved with 500 refunded and access kept", p, access())
	}
	state.Store("refunded")
	for _, id := range []string{"WH-RF", "WH-RF-AGAIN"} {
		e.mustDeliver(refundEvent(EventSaleRefunded, id, now, "19.90"))
	}
	e.mustDeliver(refundEvent(EventSaleReversed, "WH-REV", now, "19.90"))
	if p := pay(); p.Status != billing.PaymentStatusRefunded || p.RefundedAmount != 1990 || access() {
		t.Fatalf("full refund: payment %+v access %v, want refunded 1990 without access", p, access())
	}
	n := 0
	for _, m := range e.sortedEmails() {
		if m.Kind == billing.NotificationKindPaymentReversed {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d payment_reversed emails, want 1", n)
	}
}

// Proves: PAYMENT.SALE.REVERSED (a chargeback) the API confirms (state reversed) ends access;
// one the API does not confirm (the sale still completed) changes nothing.
func TestSaleReversedIsAChargeback(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e, state := newSaleEnv(t, now)
	rec := e.deliver(refundEvent(EventSaleReversed, "WH-REV-FORGED", now, "-19.90"))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ignored"`) {
		t.Fatalf("unconfirmed reversal: %d %s, want 200 ignored", rec.Code, rec.Body)
	}
	ctx := context.Background()
	if u, _ := e.store.GetUser(ctx, testUser); !u.HasAccess(now) {
		t.Fatal("access ended by a reversal the API does not report")
	}
	state.Store("reversed")
	e.mustDeliver(refundEvent(EventSaleReversed, "WH-REV", now, "-19.90"))
	p, err := e.store.FindPaymentByGateway(ctx, billing.GatewayPayPal, "SALE-1")
	if err != nil || p.Status != billing.PaymentStatusChargedBack {
		t.Fatalf("payment %+v %v, want charged back", p, err)
	}
	if u, _ := e.store.GetUser(ctx, testUser); u.HasAccess(now) {
		t.Fatalf("user %+v kept access after a chargeback", u)
	}
}
