// Package smtpnotify sends renewkit's notifications by SMTP, on
// github.com/wneessen/go-mail.
//
// Messages are multipart/alternative (plain text, then HTML) in UTF-8, with a Message-ID
// derived from the send-once key and an X-Renewkit-Key header carrying it, so a message
// resent after a dropped connection can be recognised downstream.
//
// Sessions are pooled: up to Config.MaxConns connections are kept open and reused across
// sends (a job's run sends over one connection), a dead one is redialled, idle ones are
// closed after Config.IdleTimeout. Notify honours its context, including in the middle of
// an SMTP exchange. Transient failures (4xx replies, dropped connections, timeouts) are
// retried with exponential backoff inside Notify; permanent ones (5xx to MAIL, RCPT or
// DATA, an unusable address) are not, and come back as a *SendError wrapping
// billing.ErrUndeliverable so jobs stop retrying that recipient. Failures to connect or
// authenticate are never permanent: they are the server's or the configuration's fault,
// not the recipient's.
//
// # Configuration
//
// Config maps the seed's variables: SMTP_HOST → Host, SMTP_PORT → Port, SMTP_USER →
// Username, SMTP_PASSWORD → Password (never logged), SMTP_FROM → From. TLSPolicy defaults
// to STARTTLS-mandatory; TLSImplicit is SMTPS on 465.
//
// # Example
//
//	r, err := notify.NewRenderer(notify.Config{FrontendURL: os.Getenv("FRONTEND_URL")})
//	if err != nil {
//		return err
//	}
//	port, _ := strconv.Atoi(os.Getenv("SMTP_PORT"))
//	n, err := smtpnotify.New(smtpnotify.Config{
//		Host: os.Getenv("SMTP_HOST"), Port: port,
//		Username: os.Getenv("SMTP_USER"), Password: os.Getenv("SMTP_PASSWORD"),
//		From: os.Getenv("SMTP_FROM"), Renderer: r,
//	})
//	if err != nil {
//		return err
//	}
//	defer n.Shutdown(context.Background())
package smtpnotify
