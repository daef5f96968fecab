package paypalgw

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// Event types renewkit acts on.
const (
	EventSubscriptionActivated   = "BILLING.SUBSCRIPTION.ACTIVATED"
	EventSubscriptionUpdated     = "BILLING.SUBSCRIPTION.UPDATED"
	EventSubscriptionReactivated = "BILLING.SUBSCRIPTION.RE-ACTIVATED"
	EventSubscriptionCancelled   = "BILLING.SUBSCRIPTION.CANCELLED"
	EventSubscriptionExpired     = "BILLING.SUBSCRIPTION.EXPIRED"
	EventSubscriptionSuspended   = "BILLING.SUBSCRIPTION.SUSPENDED"
	EventSubscriptionPaymentFail = "BILLING.SUBSCRIPTION.PAYMENT.FAILED"
	EventSaleCompleted           = "PAYMENT.SALE.COMPLETED"
)

// ppTime is an RFC 3339 time that may be absent or empty.
type ppTime struct{ time.Time }

func (t *ppTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// encoding/json adds the field name; the value is not echoed.
		return &json.UnmarshalTypeError{Value: "non-RFC 3339 string", Type: reflect.TypeFor[time.Time]()}
	}
	t.Time = v.UTC()
	return nil
}

// ppMoney is PayPal's v2 money object.
type ppMoney struct {
	Currency string `json:"currency_code"`
	Value    string `json:"value"`
}

// rawEvent is the envelope of every webhook event.
type rawEvent struct {
	ID           string          `json:"id"`
	EventType    string          `json:"event_type"`
	ResourceType string          `json:"resource_type"`
	CreateTime   ppTime          `json:"create_time"`
	Resource     json.RawMessage `json:"resource"`
}

// subscriptionState is the part of a PayPal subscription (v1 Subscriptions API, also the
// resource of BILLING.SUBSCRIPTION.* events) renewkit reads.
type subscriptionState struct {
	ID               string `json:"id"`
	Status           string `json:"status"`
	PlanID           string `json:"plan_id"`
	CustomID         string `json:"custom_id"`
	StartTime        ppTime `json:"start_time"`
	StatusUpdateTime ppTime `json:"status_update_time"`
	CreateTime       ppTime `json:"create_time"`
	UpdateTime       ppTime `json:"update_time"`
	BillingInfo      struct {
		OutstandingBalance ppMoney `json:"outstanding_balance"`
		CycleExecutions    []struct {
			TenureType      string `json:"tenure_type"`
			Sequence        int    `json:"sequence"`
			CyclesCompleted int    `json:"cycles_completed"`
		} `json:"cycle_executions"`
		LastPayment struct {
			Amount ppMoney `json:"amount"`
			Time   ppTime  `json:"time"`
		} `json:"last_payment"`
		LastFailedPayment struct {
			Amount     ppMoney `json:"amount"`
			Time       ppTime  `json:"time"`
			ReasonCode string  `json:"reason_code"`
		} `json:"last_failed_payment"`
		NextBillingTime     ppTime `json:"next_billing_time"`
		FailedPaymentsCount int    `json:"failed_payments_count"`
	} `json:"billing_info"`
}

// saleResource is the resource of PAYMENT.SALE.COMPLETED (v1 Payments sale).
type saleResource struct {
	ID                 string `json:"id"`
	State              string `json:"state"`
	BillingAgreementID string `json:"billing_agreement_id"`
	Custom             string `json:"custom"`
	Amount             struct {
		Total    string `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
	CreateTime ppTime `json:"create_time"`
	UpdateTime ppTime `json:"update_time"`
}

// eventKind is what the handler does with an event.
type eventKind int

const (
	kindIgnore eventKind = iota
	kindSync
	kindPaymentFailed
	kindSale
)

// decodedEvent is a verified event, parsed and checked.
type decodedEvent struct {
	ID        string
	Type      string
	Created   time.Time
	Kind      eventKind
	ObjectKey string             // see envelope
	Sub       *subscriptionState // kindSync, kindPaymentFailed
	Sale      *saleResource      // kindSale
	SaleMoney billing.Money
	Refund    *refundResource // kindReversal
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedEvent, fmt.Sprintf(format, args...))
}

// envelope is what the acknowledgement needs of a verified body: the event's id, type,
// time and kind, and the gateway object its events are applied in order by (ObjectKey:
// the subscription, or "sale:" and the sale of a refund). The ids that make the key are
// checked; the rest of the resource is decoded by the worker (decodeEvent).
type envelope struct {
	ID, Type, ObjectKey string
	Created             time.Time
	kind                eventKind
	resource            json.RawMessage // nil for kindIgnore
}

// resourceIDs reads the ids an envelope needs from any event's resource.
type resourceIDs struct {
	ID                 string `json:"id"`
	State              string `json:"state"`
	BillingAgreementID string `json:"billing_agreement_id"`
	SaleID             string `json:"sale_id"`
}

// decodeEnvelope checks and reads the envelope of a verified body. Event types renewkit
// does not act on, and sales that are not a completed subscription charge, have kind
// kindIgnore and no resource.
func decodeEnvelope(body []byte) (envelope, error) {
	var raw rawEvent
	if err := json.Unmarshal(body, &raw); err != nil {
		return envelope{}, malformed("%s", hookhttp.JSONProblem(err))
	}
	env := envelope{ID: raw.ID, Type: raw.EventType, Created: raw.CreateTime.Time}
	if env.ID == "" || len(env.ID) > 255 {
		return envelope{}, malformed("event id missing or too long")
	}
	if env.Type == "" || len(env.Type) > 255 {
		return envelope{}, malformed("event_type missing or too long")
	}
	switch env.Type {
	case EventSubscriptionActivated, EventSubscriptionUpdated, EventSubscriptionReactivated,
		EventSubscriptionCancelled, EventSubscriptionExpired, EventSubscriptionSuspended:
		env.kind = kindSync
	case EventSubscriptionPaymentFail:
		env.kind = kindPaymentFailed
	case EventSaleCompleted:
		env.kind = kindSale
	case EventSaleRefunded, EventSaleReversed:
		env.kind = kindReversal
	default:
		return env, nil
	}
	if len(raw.Resource) == 0 || string(raw.Resource) == "null" {
		return envelope{}, malformed("%s without resource", env.Type)
	}
	var ids resourceIDs
	if err := json.Unmarshal(raw.Resource, &ids); err != nil {
		return envelope{}, malformed("resource: %s", hookhttp.JSONProblem(err))
	}
	switch env.kind {
	case kindSale:
		if ids.ID == "" || len(ids.ID) > 64 {
			return envelope{}, malformed("sale id missing or too long")
		}
		if ids.BillingAgreementID == "" || !strings.EqualFold(ids.State, "completed") {
			env.kind = kindIgnore // a one-off sale, or not completed: nothing for subscriptions
			return env, nil
		}
		if err := checkSubscriptionID(ids.BillingAgreementID); err != nil {
			return envelope{}, malformed("billing_agreement_id: %v", err)
		}
		env.ObjectKey = ids.BillingAgreementID
	case kindReversal:
		if ids.SaleID == "" {
			return envelope{}, malformed("refund resource without sale_id")
		}
		if checkSubscriptionID(ids.SaleID) != nil || ids.ID != "" && checkSubscriptionID(ids.ID) != nil {
			return envelope{}, malformed("refund or sale id missing or malformed")
		}
		env.ObjectKey = "sale:" + ids.SaleID
	default:
		if err := checkSubscriptionID(ids.ID); err != nil {
			return envelope{}, malformed("subscription id: %v", err)
		}
		env.ObjectKey = ids.ID
	}
	env.resource = raw.Resource
	return env, nil
}

// decodeEvent parses a verified body: its envelope (decodeEnvelope) and the resource its
// kind carries.
func decodeEvent(body []byte) (decodedEvent, error) {
	env, err := decodeEnvelope(body)
	if err != nil {
		return decodedEvent{}, err
	}
	return decodeResource(env)
}

// decodeResource decodes the resource of an envelope decodeEnvelope read.
func decodeResource(env envelope) (decodedEvent, error) {
	d := decodedEvent{ID: env.ID, Type: env.Type, Created: env.Created, Kind: env.kind, ObjectKey: env.ObjectKey}
	switch d.Kind {
	case kindSale:
		var s saleResource
		if err := json.Unmarshal(env.resource, &s); err != nil {
			return decodedEvent{}, malformed("sale resource: %s", hookhttp.JSONProblem(err))
		}
		amount, err := ParseAmount(s.Amount.Total, s.Amount.Currency)
		if err != nil {
			return decodedEvent{}, malformed("sale amount: %v", err)
		}
		d.Sale, d.SaleMoney = &s, amount
	case kindReversal:
		var r refundResource
		if err := json.Unmarshal(env.resource, &r); err != nil {
			return decodedEvent{}, malformed("refund resource: %s", hookhttp.JSONProblem(err))
		}
		d.Refund = &r
	case kindSync, kindPaymentFailed:
		var st subscriptionState
		if err := json.Unmarshal(env.resource, &st); err != nil {
			return decodedEvent{}, malformed("subscription resource: %s", hookhttp.JSONProblem(err))
		}
		d.Sub = &st
	}
	return d, nil
}

// checkSubscriptionID accepts PayPal's subscription ids (I-XXXXXXXXXXXX): letters, digits
// and '-', at most 64. The id goes into an API path, so nothing else is allowed.
func checkSubscriptionID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: %q", ErrInvalidSubscriptionID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: %q", ErrInvalidSubscriptionID, id)
		}
	}
	return nil
}

// mappedStatus maps a PayPal subscription status to renewkit's. A subscription PayPal
// still calls ACTIVE whose latest charge failed (after the last successful one) is past due:
// PayPal retries it before suspending.
func (st *subscriptionState) mappedStatus() billing.SubscriptionStatus {
	switch strings.ToUpper(st.Status) {
	case "ACTIVE":
		lf, lp := st.BillingInfo.LastFailedPayment.Time.Time, st.BillingInfo.LastPayment.Time.Time
		if !lf.IsZero() && lf.After(lp) {
			return billing.SubscriptionStatusPastDue
		}
		return billing.SubscriptionStatusActive
	case "SUSPENDED":
		return billing.SubscriptionStatusPastDue
	case "CANCELLED", "EXPIRED":
		return billing.SubscriptionStatusCancelled
	case "APPROVAL_PENDING", "APPROVED":
		return billing.SubscriptionStatusPending
	}
	return ""
}

// eventTime is the gateway's own timestamp of the subscription state.
func (st *subscriptionState) eventTime(fallback time.Time) time.Time {
	t := st.UpdateTime.Time
	if st.StatusUpdateTime.After(t) {
		t = st.StatusUpdateTime.Time
	}
	if t.IsZero() {
		return fallback
	}
	return t
}

// regularCyclesCompleted is how many regular billing cycles PayPal has charged.
func (st *subscriptionState) regularCyclesCompleted() int {
	n := 0
	for _, c := range st.BillingInfo.CycleExecutions {
		if strings.EqualFold(c.TenureType, "REGULAR") && c.CyclesCompleted > 0 {
			n += c.CyclesCompleted
		}
	}
	return n
}
