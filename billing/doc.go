// Package billing is renewkit's core: the domain types (Plan, Subscription, Payment, User,
// Session, AuditEntry, JobRun), the interfaces adapters implement (Store and its parts,
// Notifier, RenewalLookup), the five lifecycle jobs and the gateway-agnostic
// PaymentProcessor. It imports only the standard library.
//
// # Implementing
//
// Third parties implement Store (see store/storetest for the conformance suite every store
// must pass), Notifier (see notify/notifytest) and RenewalLookup (one per gateway). The
// adapters shipped with renewkit are store/memstore, store/mongostore, notify/lognotify,
// notify/smtpnotify and gateways/{stripegw,mercadopagogw,paypalgw}.
//
// # Jobs
//
// Service.Jobs returns the five jobs with their default schedules:
//
//	check_expiring_subscriptions   daily 09:00      warn before the period ends (ladder, default 3 days)
//	process_expired_subscriptions  daily 00:30      expire lapsed subscriptions, revoke access
//	renew_subscriptions            daily 02:00      ask the gateway about auto-renewing ones
//	cleanup_old_sessions           Sundays 03:00    soft-delete sessions expired over 30 days ago
//	cleanup_pending_payments       1st, 04:00       cancel payments pending over 7 days
//
// Each job selects by state and claims what it works on, so it is safe to run late, twice,
// concurrently or on several replicas.
//
// # How a job changes a record
//
// A run claims a batch (ClaimSubscriptions, a lease renewed while it works), reads the
// batch's users with one call and the plans once per run, and decides what each record
// needs. It then stores every transition with one conditional bulk write
// (UpdateSubscriptions): each change writes only the fields it changes, and only while the
// record still has the status, period end and field values the run read and is still
// claimed by it. A record a payment, a webhook or the host application changed meanwhile
// fails that condition, and the run does nothing more to it: no access change, no email,
// no audit entry.
//
// The same single-document write records what is left to do (Effects: the user's access,
// the emails with their send-once keys, the audit entries) on the record itself. The
// effects run after it, for the whole batch: the access change is computed from the user's
// live subscriptions as they are then (another live subscription keeps the access, whether
// or not the user document names it); each notification key is reserved before the
// notifier is called and marked sent right after, so concurrent runs never send one key
// twice and a crash repeats at most the sends in flight; the audit entries carry fixed ids.
// When all of a record's effects are done they are cleared and its claim released. A run
// that finds a record with effects left by a crashed or stopped run finishes them first.
//
// Notifications go out through a pool of Config.SendConcurrency. After
// Config.BreakerThreshold consecutive transient failures a run stops sending: what is left
// stays pending, and the run reports ErrNotifierUnavailable, so an outage costs seconds.
//
// An auto-renewing subscription is expired only after its gateway says it ended: a live
// answer with a later period renews it, and an unknown or failed answer keeps it in its
// grace period and is asked again. The renew job keeps asking about auto-renewing
// subscriptions that expired within Config.ReconcileWindow, so a renewal whose webhook was
// lost restores access.
//
// # Names
//
// The values of every enumeration carry their type's name as prefix:
// SubscriptionStatusActive, PaymentStatusApproved, RunStatusSucceeded,
// WebhookEventStateProcessed, EventOutcomeProcessed, NotificationKindExpiring, CycleMonthly.
// The lists of values (AllNotificationKinds, AllWebhookEventStates) are functions that
// return a new slice on each call.
//
// # Example
//
// Example wires memstore, lognotify and a fixed clock and runs the expiry warning job;
// ExampleNewService configures a warning ladder of 7, 3 and 1 days.
package billing
