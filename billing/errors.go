package billing

import "errors"

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
)
