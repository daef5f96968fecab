// Package notify renders renewkit's notifications and holds the channels that are not
// tied to one transport: a fan-out over several notifiers and a signed webhook.
//
// Nine kinds (billing.AllNotificationKinds()) are rendered in pt-BR and en, each with a one-line subject,
// a responsive HTML part (table layout, inline CSS, no images) and a plain-text part.
// The locale is chosen per recipient ("pt", "pt_BR", "en-US"... all work) with
// Config.DefaultLocale as fallback; dates are shown in the recipient's time zone, money
// with the currency's symbol and separators ("R$ 49,90", "$49.90"), and links are built
// from Config.FrontendURL (renew, update payment, account, dashboard) and Config.AdminURL
// (the run of a failing job).
//
// Templates are embedded and parsed once by NewRenderer, which also renders every kind in
// every locale with SampleData: a broken template fails at construction, not at send
// time. Transports live in subpackages: smtpnotify (SMTP via go-mail, pooled) and
// lognotify (slog and .eml files, the development mode and the test double).
//
// # Overriding templates
//
// Config.Templates is an fs.FS. A file "{locale}/{kind}.tmpl" replaces one message and
// must define "subject", "text" and "html"; "layout.html.tmpl" replaces the HTML shell
// (it must execute {{template "html" .}}); "common.tmpl" replaces the shared "button",
// "row", "footer_html" and "footer_text" blocks. The dot is a View. Subject and text are
// executed with text/template, the HTML with html/template.
//
// # What a third party can implement
//
// Any billing.Notifier can be a FanOut channel. A new transport should render with
// Renderer.RenderNotification, wrap billing.ErrUndeliverable for permanent failures, and
// pass notifytest.Run.
//
// # Example
//
// ExampleNewRenderer mounts the email previews; ExampleNewFanOutNotifier sends through email and a
// webhook channel; ExampleNewWebhook posts a signed notification to a receiver that checks it
// with VerifyWebhook; ExampleRenderer_Render renders one email.
package notify
