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
// Service.Jobs returns the five jobs with the seed's schedules:
//
//	check_expiring_subscriptions   daily 09:00      warn before the period ends (ladder, default 3 days)
//	process_expired_subscriptions  daily 00:30      expire lapsed subscriptions, revoke access
//	renew_subscriptions            daily 02:00      ask the gateway about auto-renewing ones
//	cleanup_old_sessions           Sundays 03:00    soft-delete sessions expired over 30 days ago
//	cleanup_pending_payments       1st, 04:00       cancel payments pending over 7 days
//
// Each job selects by state and claims what it works on, so it is safe to run late, twice,
// concurrently or on several replicas; a crashed run's claims expire and the next run
// finishes the work.
//
// # Example
//
//	svc, err := billing.NewService(memstore.New(), lognotify.New(nil), billing.Config{
//		WarningDays: []int{7, 3, 1},
//	})
//	res, err := svc.CheckExpiringSubscriptions(ctx)
//	// res marshals to {"success":true,"total_found":5,"notifications_sent":5,"failed":0}
package billing
