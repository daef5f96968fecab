// Package smtpnotify sends renewkit's notifications by SMTP, on
// github.com/wneessen/go-mail.
//
// Messages are multipart/alternative (plain text, then HTML) in UTF-8, with a Message-ID
// derived from the send-once key and an X-Renewkit-Key header carrying it, so a message
// resent after a dropped connection can be recognised downstream.
//
// Sessions are pooled: up to Config.MaxConns connections (default 8, billing's default
// SendConcurrency) are kept open and reused across sends, so that many concurrent Notify
// calls run their SMTP transactions in parallel and further calls wait for a free
// connection. A dead connection is dropped and redialled, idle ones are closed after
// Config.IdleTimeout, Shutdown closes them all. Notify honours its context, including in
// the middle of an SMTP exchange.
//
// Transient failures (4xx replies, dropped connections, timeouts) are retried with
// exponential backoff inside Notify, at most Config.MaxAttempts times (default 3) within
// Config.RetryBudget (default 3s), so an outage costs each message about a second rather
// than minutes and the job's circuit breaker trips quickly. Permanent failures (5xx to
// MAIL, RCPT or DATA, an unusable address) are never retried, and come back as a
// *SendError wrapping billing.ErrUndeliverable so jobs stop retrying that recipient.
// Failures to connect or authenticate are never permanent: they are the server's or the
// configuration's fault, not the recipient's.
//
// # Configuration
//
// Config maps the original application's variables: SMTP_HOST → Host, SMTP_PORT → Port, SMTP_USER →
// Username, SMTP_PASSWORD → Password (never logged), SMTP_FROM → From. TLSPolicy defaults
// to STARTTLS-mandatory; TLSImplicit is SMTPS on 465.
//
// # Example
//
// ExampleNew configures the notifier from the environment.
package smtpnotify
