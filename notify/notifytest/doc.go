// Package notifytest is the conformance suite for billing.Notifier implementations. Every
// notifier in renewkit runs it (smtpnotify against an in-process SMTP server, lognotify,
// the notify.FanOut and the notify.Webhook channel), and third-party notifiers should too.
//
// The suite checks that every kind in every locale is delivered with its send-once key
// and recipient, that concurrent sends are all delivered exactly once, and that a
// cancelled context returns an error and delivers nothing.
//
// # What a third party implements
//
// A factory returning a Harness: the notifier under test and a Delivered function that
// reports what reached the far end (an SMTP server's inbox, a webhook receiver's log). The
// factory is called once per subtest, so each starts empty.
//
// # Example
//
// ExampleRun is the conformance test of the log notifier.
package notifytest
