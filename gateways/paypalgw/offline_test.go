package paypalgw

import (
	"bytes"
	"context"
	"hash/crc32"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// forgeCRC32 returns body with the run of 'a's in its "pad" value changed so that the
// CRC32 (IEEE) equals want, as an attacker holding one genuinely signed delivery does:
// CRC32 is affine over GF(2), so flipping the low bit of chosen pad characters ('a' <-> '`')
// reaches any value once 32 independent flips are found among them.
func forgeCRC32(t *testing.T, body []byte, want uint32) []byte {
	t.Helper()
	start := bytes.Index(body, []byte(`"pad":"`))
	if start < 0 {
		t.Fatal("body has no pad")
	}
	start += len(`"pad":"`)
	end := start + bytes.IndexByte(body[start:], '"')
	base := crc32.ChecksumIEEE(body)
	// Effect of flipping each pad byte's low bit on the checksum.
	type vec struct {
		effect uint32
		flips  []int
	}
	var basis [32]*vec
	for i := start; i < end; i++ {
		b := bytes.Clone(body)
		b[i] ^= 1
		v := &vec{effect: crc32.ChecksumIEEE(b) ^ base, flips: []int{i}}
		for bit := 31; bit >= 0 && v.effect != 0; bit-- {
			if v.effect&(1<<bit) == 0 {
				continue
			}
			if basis[bit] == nil {
				basis[bit] = v
				break
			}
			v = &vec{effect: v.effect ^ basis[bit].effect, flips: append(append([]int(nil), v.flips...), basis[bit].flips...)}
		}
	}
	target := base ^ want
	out := bytes.Clone(body)
	for bit := 31; bit >= 0; bit-- {
		if target&(1<<bit) == 0 {
			continue
		}
		if basis[bit] == nil {
			t.Fatal("pad too short to forge the checksum")
		}
		target ^= basis[bit].effect
		for _, i := range basis[bit].flips {
			out[i] ^= 1
		}
	}
	if crc32.ChecksumIEEE(out) != want {
		t.Fatal("forgery failed")
	}
	return out
}

// collidingSale is a PAYMENT.SALE.COMPLETED body of 0.01 USD for the test subscription,
// sale FORGED-1, with the same CRC32 as genuine.
func collidingSale(t *testing.T, genuine []byte, at time.Time) []byte {
	forged := saleEvent(t, "WH-FORGED", "FORGED-1", at, "0.01")
	forged = bytes.Replace(forged, []byte(`"id": "WH-FORGED"`), []byte(`"pad":"`+strings.Repeat("a", 96)+`", "id": "WH-FORGED"`), 1)
	if !bytes.Contains(forged, []byte(`"pad":"`)) {
		t.Fatal("fixture changed: cannot place the pad")
	}
	return forgeCRC32(t, forged, crc32.ChecksumIEEE(genuine))
}

// Proves: offline verification without API credentials acknowledges events but never
// grants access: a genuinely signed activation and sale are answered 200 "ignored" and no
// subscription, payment or email results; and a different body with the same CRC32 as a
// genuinely signed delivery (which the signature cannot tell apart), replayed with its
// headers, grants nothing either.
func TestOfflineWithoutCredentialsNeverGrants(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newStrictEnv(t, now, nil)
	act := activated(t, "WH-ACT", now.Add(-time.Hour))
	sale := saleEvent(t, "WH-SALE", "SALE-1", now.Add(-time.Minute), "19.90")
	saleHeaders := e.signer.Sign(sale, now)
	for _, d := range []struct {
		body []byte
		hdr  http.Header
	}{{act, e.signer.Sign(act, now)}, {sale, saleHeaders}, {collidingSale(t, sale, now.Add(-time.Minute)), saleHeaders}} {
		rec := e.post(d.body, d.hdr)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ignored"`) {
			t.Fatalf("got %d %s, want 200 ignored", rec.Code, rec.Body)
		}
	}
	assertNothingGranted(t, e)
}

func assertNothingGranted(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	if sub, ok := e.sub(); ok {
		t.Errorf("a subscription was created: %+v", sub)
	}
	for _, id := range []string{"SALE-1", "FORGED-1"} {
		if p, err := e.store.FindPaymentByGateway(ctx, billing.GatewayPayPal, id); err == nil {
			t.Errorf("payment %s recorded: %+v", id, p)
		}
	}
	if u, _ := e.store.GetUser(ctx, testUser); u.HasAccess(e.clock.Now()) || u.PlanID != "" {
		t.Errorf("user has access: %+v", u)
	}
	if m := e.sortedEmails(); len(m) != 0 {
		t.Errorf("emails sent: %+v", m)
	}
}

// saleAPI extends the API fake with GET /v1/payments/sale/{id}: SALE-1 is a completed
// 19.90 USD charge of the test subscription made at saleTime; any other sale is unknown.
func saleAPI(t *testing.T, api *apiServer, saleTime time.Time) {
	inner := api.Config.Handler
	api.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payments/sale/") {
			w.Header().Set("Content-Type", "application/json")
			if strings.TrimPrefix(r.URL.Path, "/v1/payments/sale/") != "SALE-1" {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write(fixture(t, "error_not_found.json"))
				return
			}
			_, _ = w.Write([]byte(`{"id":"SALE-1","state":"completed","amount":{"total":"19.90","currency":"USD"},` +
				`"payment_mode":"INSTANT_TRANSFER","billing_agreement_id":"` + testSubID + `",` +
				`"create_time":"` + ts(saleTime) + `","update_time":"` + ts(saleTime) + `"}`))
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// Proves: with API credentials (offline verification), a sale is read from the PayPal API
// before anything changes. A body with the CRC32 of a genuinely signed sale, naming a sale
// PayPal does not know, is ignored and records nothing; and a genuinely signed sale of a
// subscription the API reports CANCELLED does not bring it back: the cancellation is applied
// and the user has no access.
func TestSaleRefetchedWithCredentials(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	api := newAPIServer(t)
	saleTime := now.Add(-2 * time.Hour)
	saleAPI(t, api, saleTime)
	api.nextBilling, api.updated = now.AddDate(0, 1, 0), now.Add(-3*time.Hour)
	e := newStrictEnv(t, now, func(c *Config) { c.ClientID, c.ClientSecret, c.BaseURL = "client-id", "client-secret", api.URL })

	sale := saleEvent(t, "WH-SALE", "SALE-1", saleTime, "19.90")
	hdr := e.signer.Sign(sale, now)
	rec := e.post(collidingSale(t, sale, saleTime), hdr)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ignored"`) {
		t.Fatalf("forged sale: got %d %s, want 200 ignored", rec.Code, rec.Body)
	}
	assertNothingGranted(t, e)

	// The subscription exists and is active; then PayPal cancels it an hour ago.
	e.mustDeliver(activated(t, "WH-ACT", now.Add(-3*time.Hour)))
	if sub, ok := e.sub(); !ok || sub.Status != billing.SubscriptionStatusPending {
		t.Fatalf("activation: %+v", sub)
	}
	api.subStatus, api.updated = "CANCELLED", now.Add(-time.Hour)
	e.mustDeliver(sale)
	sub, _ := e.sub()
	if sub.Status != billing.SubscriptionStatusCancelled {
		t.Errorf("sale of a subscription PayPal reports CANCELLED left it %s", sub.Status)
	}
	if u, _ := e.store.GetUser(context.Background(), testUser); u.HasAccess(now) {
		t.Errorf("user has access after PayPal cancelled: %+v", u)
	}
	if p, err := e.store.FindPaymentByGateway(context.Background(), billing.GatewayPayPal, "SALE-1"); err != nil ||
		p.Amount != (billing.Money{Amount: 1990, Currency: "USD"}) {
		t.Errorf("sale not recorded from the API: %+v %v", p, err)
	}
}
