package stripegw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// The webhook body is decoded into these small structs rather than stripe-go's types: they
// read only the fields renewkit uses, accept both an id and an expanded object where Stripe
// sends either, and also read the locations API version 2025-03-31.basil moved fields to
// (invoice.parent.subscription_details.subscription, line.parent.subscription_item_details,
// subscription.items.data[].current_period_*), which stripe-go v76's types do not know.

// Event types the handler acts on.
const (
	EventCheckoutSessionCompleted = "checkout.session.completed"
	EventInvoicePaid              = "invoice.paid"
	EventInvoicePaymentFailed     = "invoice.payment_failed"
	EventSubscriptionCreated      = "customer.subscription.created"
	EventSubscriptionUpdated      = "customer.subscription.updated"
	EventSubscriptionDeleted      = "customer.subscription.deleted"
)

// wireEvent is the event envelope.
type wireEvent struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// ref is a field Stripe sends as an id or as an expanded object with an id.
type ref string

func (r *ref) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*r = ""
		return nil
	case b[0] == '"':
		// encoding/json has checked the string; one without escapes is its own value.
		if s := b[1 : len(b)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			*r = ref(s)
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = ref(s)
		return nil
	case b[0] == '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = ref(o.ID)
		return nil
	}
	return fmt.Errorf("expected an id or an object, got %.20s", b)
}

type wirePeriod struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

type wireSubscription struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Status             string            `json:"status"`
	CancelAtPeriodEnd  bool              `json:"cancel_at_period_end"`
	CurrentPeriodStart int64             `json:"current_period_start"`
	CurrentPeriodEnd   int64             `json:"current_period_end"`
	Metadata           map[string]string `json:"metadata"`
	LatestInvoice      ref               `json:"latest_invoice"`
	Items              struct {
		Data []wireItem `json:"data"`
	} `json:"items"`

	// latest is the expanded latest invoice, set when the subscription came from the API.
	latest *wireInvoice
}

// wireItem is a subscription item: its period (API 2025-03-31 and later) and its price.
type wireItem struct {
	CurrentPeriodStart int64 `json:"current_period_start"`
	CurrentPeriodEnd   int64 `json:"current_period_end"`
	Price              struct {
		ID string `json:"id"`
	} `json:"price"`
}

// period returns the current period: the subscription's fields, or (API 2025-03-31 and
// later) the latest end among its items.
func (s *wireSubscription) period() (start, end time.Time) {
	ps, pe := s.CurrentPeriodStart, s.CurrentPeriodEnd
	if pe == 0 {
		for _, it := range s.Items.Data {
			if it.CurrentPeriodEnd > pe {
				ps, pe = it.CurrentPeriodStart, it.CurrentPeriodEnd
			}
		}
	}
	return unix(ps), unix(pe)
}

type wireLine struct {
	Type         string     `json:"type"`
	Proration    bool       `json:"proration"`
	Subscription ref        `json:"subscription"`
	Period       wirePeriod `json:"period"`
	Parent       *struct {
		Type                    string `json:"type"`
		SubscriptionItemDetails *struct {
			Subscription ref  `json:"subscription"`
			Proration    bool `json:"proration"`
		} `json:"subscription_item_details"`
	} `json:"parent"`
}

// subscriptionLine reports whether the line charges for a subscription item (not a
// proration or a one-off invoice item).
func (l wireLine) subscriptionLine() bool {
	if l.Parent != nil && l.Parent.SubscriptionItemDetails != nil {
		return !l.Parent.SubscriptionItemDetails.Proration
	}
	return l.Type == "subscription" && !l.Proration
}

type wireInvoice struct {
	ID            string             `json:"id"`
	Object        string             `json:"object"`
	Status        string             `json:"status"`
	Paid          bool               `json:"paid"`
	Currency      string             `json:"currency"`
	AmountPaid    int64              `json:"amount_paid"`
	AmountDue     int64              `json:"amount_due"`
	AttemptCount  int64              `json:"attempt_count"`
	BillingReason string             `json:"billing_reason"`
	Subscription  ref                `json:"subscription"`
	Parent        *wireInvoiceParent `json:"parent"`
	Lines         struct {
		Data []wireLine `json:"data"`
	} `json:"lines"`
	StatusTransitions struct {
		PaidAt int64 `json:"paid_at"`
	} `json:"status_transitions"`
	// Set from an expanded payment_intent when the invoice came from the API.
	failureCode, failureMessage string
}

// wireInvoiceParent is where API 2025-03-31 and later name an invoice's subscription.
type wireInvoiceParent struct {
	SubscriptionDetails *struct {
		Subscription ref `json:"subscription"`
	} `json:"subscription_details"`
}

// subscriptionID is the subscription the invoice bills, in either API layout.
func (inv *wireInvoice) subscriptionID() string {
	return invoiceSubscription(inv.Subscription, inv.Parent)
}

// invoiceSubscription is an invoice's subscription: its subscription field (API versions
// before 2025-03-31) or parent.subscription_details.subscription.
func invoiceSubscription(sub ref, parent *wireInvoiceParent) string {
	if sub != "" {
		return string(sub)
	}
	if parent != nil && parent.SubscriptionDetails != nil {
		return string(parent.SubscriptionDetails.Subscription)
	}
	return ""
}

// period is the service period the invoice pays: the subscription item lines' period (the
// latest end among them), never invoice.period_start/period_end, which for a subscription
// renewal cover the period that just ended. Zero when the invoice has no such line.
func (inv *wireInvoice) period() (start, end time.Time) {
	var ps, pe int64
	for _, l := range inv.Lines.Data {
		if l.subscriptionLine() && l.Period.End > pe {
			ps, pe = l.Period.Start, l.Period.End
		}
	}
	return unix(ps), unix(pe)
}

func (inv *wireInvoice) isPaid() bool { return inv.Status == "paid" || inv.Paid }

// paidAt is when Stripe collected the invoice (status_transitions.paid_at); zero when unknown.
func (inv *wireInvoice) paidAt() time.Time { return unix(inv.StatusTransitions.PaidAt) }

type wireCheckoutSession struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Mode              string            `json:"mode"`
	PaymentStatus     string            `json:"payment_status"`
	ClientReferenceID string            `json:"client_reference_id"`
	Subscription      ref               `json:"subscription"`
	Invoice           ref               `json:"invoice"`
	PaymentIntent     ref               `json:"payment_intent"`
	Metadata          map[string]string `json:"metadata"`
	AmountTotal       int64             `json:"amount_total"`
	Currency          string            `json:"currency"`
}

// decodedEvent is a verified, decoded event: the envelope plus the one object its type
// carries (nil for types renewkit ignores).
type decodedEvent struct {
	ID      string
	Type    string
	Created time.Time
	Sub     *wireSubscription
	Invoice *wireInvoice
	Session *wireCheckoutSession
	Charge  *wireCharge  // charge.refunded
	Dispute *wireDispute // charge.dispute.*
}

// handled reports whether renewkit acts on the event type.
func handled(typ string) bool {
	switch typ {
	case EventCheckoutSessionCompleted, EventInvoicePaid, EventInvoicePaymentFailed,
		EventSubscriptionCreated, EventSubscriptionUpdated, EventSubscriptionDeleted:
		return true
	}
	return reversalEvent(typ)
}

// envelope is what the acknowledgement needs of a verified body: the event's id, type and
// time, and the gateway object its events are applied in order by. It is read without
// decoding the object the event carries; the worker decodes that (decodeEvent) when it
// applies the stored event.
type envelope struct {
	ID, Type, ObjectKey string
	Created             time.Time
	// object is data.object of an event type renewkit acts on, nil for the others.
	object []byte
}

// decodeHead checks the envelope of a verified body and returns it without its object key,
// with data.object for an event type renewkit acts on. Every error wraps
// ErrMalformedEvent (answered 400).
func decodeHead(body []byte) (envelope, error) {
	var w wireEvent
	if err := json.Unmarshal(body, &w); err != nil {
		return envelope{}, fmt.Errorf("%w: %v", ErrMalformedEvent, hookhttp.JSONProblem(err))
	}
	if w.ID == "" || w.Type == "" {
		return envelope{}, fmt.Errorf("%w: id and type are required", ErrMalformedEvent)
	}
	if w.Object != "" && w.Object != "event" {
		return envelope{}, fmt.Errorf("%w: object is %q, not event", ErrMalformedEvent, w.Object)
	}
	if len(w.ID) > 255 || len(w.Type) > 255 {
		return envelope{}, fmt.Errorf("%w: id or type too long", ErrMalformedEvent)
	}
	if w.Created < 0 || w.Created > maxUnixSeconds {
		return envelope{}, fmt.Errorf("%w: created is not Unix seconds", ErrMalformedEvent)
	}
	env := envelope{ID: w.ID, Type: w.Type, Created: unix(w.Created)}
	if !handled(w.Type) {
		return env, nil
	}
	obj := bytes.TrimSpace(w.Data.Object)
	if len(obj) == 0 || obj[0] != '{' {
		return envelope{}, fmt.Errorf("%w: data.object is missing", ErrMalformedEvent)
	}
	env.object = obj
	return env, nil
}

// decodeEnvelope checks and reads the envelope of a verified body, object key included.
// Every error wraps ErrMalformedEvent (answered 400): the envelope is malformed, or an
// event type renewkit acts on has no data.object with an id. The object's other fields
// are not looked at. The common shape is read by scanEnvelope; whatever it is not sure of
// is decoded by decodeEnvelopeJSON, which reads the same envelope or gives the error.
func decodeEnvelope(body []byte) (envelope, error) {
	if env, ok := scanEnvelope(body); ok {
		return env, nil
	}
	return decodeEnvelopeJSON(body)
}

// decodeEnvelopeJSON is decodeEnvelope with encoding/json.
func decodeEnvelopeJSON(body []byte) (envelope, error) {
	env, err := decodeHead(body)
	if err != nil || env.object == nil {
		return env, err
	}
	if env.ObjectKey, err = objectKey(env.Type, env.object); err != nil {
		return envelope{}, fmt.Errorf("%w: data.object: %v", ErrMalformedEvent, hookhttp.JSONProblem(err))
	}
	if env.ObjectKey == "" {
		return envelope{}, fmt.Errorf("%w: data.object has no id", ErrMalformedEvent)
	}
	return env, nil
}

// objectKey reads the Stripe object whose events are applied in order, and whose
// processing wakes the events parked on it, from the data.object of an event of type typ:
// the subscription, else the charge or invoice. It reads only the fields it needs, each
// with the type the event's full decode (decodeObject) gives it, so an object that decodes
// also has a key. Empty when the object has no id.
func objectKey(typ string, obj []byte) (string, error) {
	var id, parent string // the object's id; the subscription (or charge) it belongs to
	var err error
	switch typ {
	case EventInvoicePaid, EventInvoicePaymentFailed: // as wireInvoice
		var inv struct {
			ID           string             `json:"id"`
			Subscription ref                `json:"subscription"`
			Parent       *wireInvoiceParent `json:"parent"`
		}
		err = json.Unmarshal(obj, &inv)
		id, parent = inv.ID, invoiceSubscription(inv.Subscription, inv.Parent)
	case EventCheckoutSessionCompleted: // as wireCheckoutSession
		var cs struct {
			ID           string `json:"id"`
			Subscription ref    `json:"subscription"`
		}
		err = json.Unmarshal(obj, &cs)
		id, parent = cs.ID, string(cs.Subscription)
	case EventDisputeCreated, EventDisputeClosed: // as wireDispute
		var d struct {
			ID     string `json:"id"`
			Charge ref    `json:"charge"`
		}
		err = json.Unmarshal(obj, &d)
		id, parent = d.ID, string(d.Charge)
	default: // a subscription or a charge: its own id
		var x struct {
			ID string `json:"id"`
		}
		err = json.Unmarshal(obj, &x)
		id = x.ID
	}
	if err != nil || id == "" {
		return "", err
	}
	return firstNonEmpty(parent, id), nil
}

// decodeEvent decodes a verified body: its envelope and the object its type carries.
// Every error wraps ErrMalformedEvent (answered 400). Unknown event types decode with no
// object.
func decodeEvent(body []byte) (decodedEvent, error) {
	if env, ok := scanEnvelope(body); ok {
		return decodeObject(env)
	}
	env, err := decodeHead(body)
	if err != nil {
		return decodedEvent{}, err
	}
	return decodeObject(env)
}

// decodeObject decodes the object of a checked envelope (decodeHead, decodeEnvelope).
func decodeObject(env envelope) (decodedEvent, error) {
	ev := decodedEvent{ID: env.ID, Type: env.Type, Created: env.Created}
	if env.object == nil {
		return ev, nil
	}
	obj := env.object
	var id string
	var err error
	switch ev.Type {
	case EventCheckoutSessionCompleted:
		ev.Session = new(wireCheckoutSession)
		err = json.Unmarshal(obj, ev.Session)
		id = ev.Session.ID
	case EventInvoicePaid, EventInvoicePaymentFailed:
		ev.Invoice = new(wireInvoice)
		err = json.Unmarshal(obj, ev.Invoice)
		id = ev.Invoice.ID
	case EventChargeRefunded, EventDisputeCreated, EventDisputeClosed:
		id, err = decodeReversal(&ev, obj)
	default:
		ev.Sub = new(wireSubscription)
		err = json.Unmarshal(obj, ev.Sub)
		id = ev.Sub.ID
	}
	if err != nil {
		return decodedEvent{}, fmt.Errorf("%w: data.object: %v", ErrMalformedEvent, hookhttp.JSONProblem(err))
	}
	if id == "" {
		return decodedEvent{}, fmt.Errorf("%w: data.object has no id", ErrMalformedEvent)
	}
	return ev, nil
}

func unix(sec int64) time.Time {
	if sec <= 0 || sec > maxUnixSeconds {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// currency returns Stripe's lower-case currency as an ISO 4217 code.
func currency(c string) string { return strings.ToUpper(c) }
