// Package testkit holds the small test doubles renewkit's own tests share: a settable Clock,
// a recording Notifier that can be told to fail, and fixture builders (Plan, User,
// Subscription, Payment, Session) with Seed to insert them. It is internal: hosts use
// store/memstore and notify/lognotify as their doubles.
//
// # Example
//
//	clock := testkit.NewClock(testkit.Epoch)
//	notifier := testkit.NewNotifier()
//	st := memstore.New()
//	testkit.Seed(t, st,
//		testkit.Plan("basic", billing.CycleMonthly, 2990),
//		testkit.User("ana"),
//		testkit.Subscription("s1", "ana", "basic", clock.Now().Add(3*24*time.Hour)),
//	)
//	svc, _ := billing.NewService(st, notifier, billing.Config{Clock: clock})
//	notifier.FailNext(1) // the first send fails with ErrTransient
package testkit
