package mercadopagogw

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// TestRenewalLookup proves the preapproval is mapped for the renew job: an authorized,
// charged preapproval reports its paid period up to next_payment_date; a failing charge is
// past_due with no period; paused and cancelled map to past_due and cancelled.
func TestRenewalLookup(t *testing.T) {
	mp := newFakeMP(t)
	l, err := NewRenewalLookup(Config{AccessToken: testToken, BaseURL: mp.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	next, last := at(2, 15, 13, 0, 0), at(1, 15, 13, 5, 2)
	cases := []struct {
		name       string
		o          preOpts
		status     billing.SubscriptionStatus
		start, end time.Time
	}{
		{"authorized", preOpts{status: "authorized", charged: 1, next: next, lastCharged: last}, billing.SubscriptionStatusActive, last, next},
		{"charge failing", preOpts{status: "authorized", charged: 1, pending: 1, next: next, lastCharged: last}, billing.SubscriptionStatusPastDue, time.Time{}, time.Time{}},
		{"paused", preOpts{status: "paused", charged: 1, next: next, lastCharged: last}, billing.SubscriptionStatusPastDue, time.Time{}, time.Time{}},
		{"cancelled", preOpts{status: "cancelled", charged: 1, next: next, lastCharged: last}, billing.SubscriptionStatusCancelled, time.Time{}, time.Time{}},
		{"pending", preOpts{status: "pending"}, billing.SubscriptionStatusPending, time.Time{}, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.lastModified = last
			mp.putPreapproval(preapprovalFrom(t, tc.o))
			gs, err := l.LookupSubscription(context.Background(), preID)
			if err != nil {
				t.Fatal(err)
			}
			if gs.ID != preID || gs.Status != tc.status || !gs.PeriodStart.Equal(tc.start) || !gs.PeriodEnd.Equal(tc.end) {
				t.Fatalf("got %+v", gs)
			}
			if gs.Amount != (billing.Money{Amount: 4990, Currency: "BRL"}) {
				t.Fatalf("amount %+v", gs.Amount)
			}
		})
	}
}

// TestRenewalLookupErrors proves failures are *APIError with the HTTP status and whether a
// retry can help.
func TestRenewalLookupErrors(t *testing.T) {
	mp := newFakeMP(t)
	l, _ := NewRenewalLookup(Config{AccessToken: testToken, BaseURL: mp.srv.URL})
	var ae *APIError

	_, err := l.LookupSubscription(context.Background(), "2c9380848d6f7e2b018d7a1b2c3d0000")
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || ae.Retryable || !errors.Is(err, billing.ErrNotFound) || !errors.Is(err, ErrAPI) {
		t.Fatalf("404: %#v", err)
	}
	mp.down.Store(true)
	_, err = l.LookupSubscription(context.Background(), preID)
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable || !ae.Retryable {
		t.Fatalf("503: %#v", err)
	}
	bad, _ := NewRenewalLookup(Config{AccessToken: "wrong", BaseURL: mp.srv.URL})
	_, err = bad.LookupSubscription(context.Background(), preID)
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || ae.Retryable {
		t.Fatalf("401: %#v", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	gone, _ := NewRenewalLookup(Config{AccessToken: testToken, BaseURL: closed.URL, Timeout: time.Second})
	_, err = gone.LookupSubscription(context.Background(), preID)
	if !errors.As(err, &ae) || ae.StatusCode != 0 || !ae.Retryable {
		t.Fatalf("transport: %#v", err)
	}
	if _, err := l.LookupSubscription(context.Background(), "../v1/payments/1"); err == nil {
		t.Fatal("malformed id accepted")
	}
}

// TestRenewJobWithLookup proves the lookup plugs into billing's renew job: a subscription
// ending within the window takes the period Mercado Pago reports.
func TestRenewJobWithLookup(t *testing.T) {
	e := newEnv(t)
	l, err := NewRenewalLookup(Config{AccessToken: testToken, BaseURL: e.mp.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := billing.NewService(e.st, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Clock: e.clock, Renewals: map[string]billing.RenewalLookup{billing.GatewayMercadoPago: l}})
	if err != nil {
		t.Fatal(err)
	}
	ph := lifecycle(t)[0]
	e.clock.Set(ph.now)
	ph.api(e.mp)
	for _, d := range ph.notes {
		if w := e.deliver(d.typ, d.dataID, d.body); w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	lifecycle(t)[1].api(e.mp) // Mercado Pago charged the renewal; its notification is lost
	e.clock.Set(at(2, 14, 5, 0, 0))
	res, err := svc.RenewSubscriptions(context.Background())
	if err != nil || res.Renewed != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	sub, _ := e.st.FindSubscriptionByGateway(context.Background(), billing.GatewayMercadoPago, preID)
	if !sub.CurrentPeriodEnd.Equal(at(3, 15, 13, 0, 0)) || sub.Status != billing.SubscriptionStatusActive {
		t.Fatalf("sub %+v", sub)
	}
}
