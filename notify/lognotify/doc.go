// Package lognotify is the billing.Notifier for development and tests: it renders each
// notification, logs its kind, key, recipient address and subject through slog (never the
// body), optionally writes it as a full MIME .eml file a developer can open, and keeps
// every notification it accepted (Sent), so hosts use it as a test double, or as the
// "email disabled" mode of a deployment.
//
// # What a third party can implement
//
// Nothing: use it as is. WithFailure injects delivery failures in tests.
//
// # Example
//
// Example logs a notification; ExampleNewNotifier also writes it as a .eml file and lists what
// was sent, as a host's test does.
package lognotify
