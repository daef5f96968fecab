// Package testkit holds the small test doubles renewkit's own tests share: a settable Clock,
// a recording Notifier that can be told to fail, and fixture builders (Plan, User,
// Subscription, Payment, Session) with Seed to insert them. It is internal: hosts use
// store/memstore and notify/lognotify as their doubles.
//
// # Example
//
// Example seeds a store, drives billing with the settable clock and makes a send fail.
package testkit
