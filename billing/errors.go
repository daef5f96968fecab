package billing

import (
	"errors"
	"fmt"
)

// Sentinel errors. Adapters wrap them with %w so callers can match with errors.Is.
var (
	// ErrNotFound: the record does not exist (or is soft-deleted).
	ErrNotFound = errors.New("billing: not found")
	// ErrConflict: a record with the same key exists, or the record changed since it was
	// read (optimistic version check). Re-read and retry.
	ErrConflict = errors.New("billing: conflict")
	// ErrInvalidTransition: the requested state change is not allowed from the record's
	// current state (for example approving a cancelled payment).
	ErrInvalidTransition = errors.New("billing: invalid state transition")
	// ErrInvalidAmount: a negative amount or a missing currency.
	ErrInvalidAmount = errors.New("billing: invalid amount")
	// ErrUnknownPlan: the payment or subscription names a plan the store does not have.
	ErrUnknownPlan = errors.New("billing: unknown plan")
	// ErrUnknownPayment: no payment with the given id.
	ErrUnknownPayment = errors.New("billing: unknown payment")
	// ErrInvalidInput: a required argument is missing or malformed.
	ErrInvalidInput = errors.New("billing: invalid input")
	// ErrUndeliverable is wrapped by notifiers for permanent delivery failures (SMTP 5xx,
	// bad address). Jobs record the notification as failed and do not retry it.
	ErrUndeliverable = errors.New("billing: notification undeliverable")
	// ErrLockHeld: another owner holds an unexpired lease on the lock.
	ErrLockHeld = errors.New("billing: lock held by another owner")
	// ErrLockLost: the lease expired or was taken over; the caller no longer holds it.
	ErrLockLost = errors.New("billing: lock lost")
	// ErrNoRenewalLookup: the subscription's gateway has no RenewalLookup configured.
	ErrNoRenewalLookup = errors.New("billing: no renewal lookup for gateway")
	// ErrUnknownGatewayStatus: a gateway lookup answered without a status renewkit maps
	// (GatewaySubscription.Status empty or unknown). The subscription keeps its state and
	// is asked again.
	ErrUnknownGatewayStatus = errors.New("billing: gateway answered an unknown subscription status")
	// ErrNotifierUnavailable: a job run stopped sending after Config.BreakerThreshold
	// consecutive transient notifier failures; the rest stays pending for the next run.
	ErrNotifierUnavailable = errors.New("billing: notifier unavailable")
	// ErrBadReference: a checkout or subscription reference is not one SignReference made
	// with this service's secret (unsigned, edited, signed with another secret, or no
	// secret configured). Nothing is created or granted; a webhook answers 2xx "rejected".
	ErrBadReference = errors.New("billing: reference not signed by this service")
	// ErrChargeMismatch: the gateway charged another currency, or less, than the payment or
	// plan costs, or for another plan than the one referenced. The payment is recorded as
	// failed with the reason and nothing is granted; a webhook answers 2xx "rejected".
	ErrChargeMismatch = errors.New("billing: charge does not match what was bought")
)

// Refused reports whether err is a refusal a retry cannot change (ErrBadReference,
// ErrChargeMismatch): the delivery was genuine, what it asks for is not granted.
func Refused(err error) bool {
	return errors.Is(err, ErrBadReference) || errors.Is(err, ErrChargeMismatch)
}

// ErrMalformedRecord is wrapped by RecordError when a stored record cannot be decoded (a
// field of the wrong type in a document written by another program).
var ErrMalformedRecord = errors.New("billing: malformed record")

// RecordError reports one stored record a store could not read. ClaimSubscriptions returns
// the records it could read together with a RecordError (or several, joined with
// errors.Join) for the ones it could not; the jobs count each as a failure of that record and
// go on with the rest.
type RecordError struct {
	Collection string
	ID         string
	Err        error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Collection, e.ID, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// recordErrors splits err into the RecordErrors it is made of. ok is false when err holds
// anything else, which makes the whole call a failure.
func recordErrors(err error) (errs []*RecordError, ok bool) {
	var walk func(error) bool
	walk = func(e error) bool {
		var re *RecordError
		if j, isJoin := e.(interface{ Unwrap() []error }); isJoin {
			for _, inner := range j.Unwrap() {
				if !walk(inner) {
					return false
				}
			}
			return true
		}
		if errors.As(e, &re) {
			errs = append(errs, re)
			return true
		}
		return false
	}
	return errs, err != nil && walk(err)
}
