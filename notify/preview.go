package notify

import (
	"html/template"
	"net/http"

	"github.com/renewkit/renewkit/billing"
)

// PreviewHandler returns an http.Handler for the admin area that shows every kind in every
// locale rendered with SampleData, the HTML part (in a sandboxed iframe) beside the text
// part. Routes are relative, so mount it under any prefix with http.StripPrefix:
//
//	GET /                          the index page
//	GET /{locale}/{kind}/html      one HTML part
//	GET /{locale}/{kind}/text      one text part (text/plain)
//
// The handler has no authentication of its own; mount it behind the host's admin check.
func (r *Renderer) PreviewHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", r.previewIndex)
	mux.HandleFunc("GET /{locale}/{kind}/html", func(w http.ResponseWriter, req *http.Request) {
		m, ok := r.previewMessage(w, req)
		if ok {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(m.HTML))
		}
	})
	mux.HandleFunc("GET /{locale}/{kind}/text", func(w http.ResponseWriter, req *http.Request) {
		m, ok := r.previewMessage(w, req)
		if ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("Subject: " + m.Subject + "\n\n" + m.Text))
		}
	})
	return mux
}

func (r *Renderer) previewMessage(w http.ResponseWriter, req *http.Request) (Message, bool) {
	locale, ok := canonicalLocale(req.PathValue("locale"))
	kind := billing.NotificationKind(req.PathValue("kind"))
	if _, known := r.sets[setKey{kind, locale}]; !ok || !known {
		http.Error(w, "unknown locale or kind", http.StatusNotFound)
		return Message{}, false
	}
	m, err := r.Render(kind, locale, SampleData(kind, locale))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return Message{}, false
	}
	return m, true
}

var previewPage = template.Must(template.New("preview").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Product}} email previews</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:24px;background:#f9fafb;color:#111827}
nav a{margin-right:12px}
section{margin:32px 0;padding:16px;background:#fff;border:1px solid #e5e7eb;border-radius:8px}
h2{margin:0 0 4px;font-size:18px}
.subject{margin:0 0 12px;color:#374151}
.pair{display:flex;gap:16px;flex-wrap:wrap}
.pair>div{flex:1 1 480px;min-width:320px}
iframe{width:100%;height:720px;border:1px solid #e5e7eb;border-radius:6px;background:#fff}
pre{white-space:pre-wrap;margin:0;padding:12px;height:696px;overflow:auto;background:#f3f4f6;border-radius:6px;font-size:13px}
</style>
</head>
<body>
<h1>{{.Product}} email previews</h1>
<nav>{{range .Items}}<a href="#{{.Locale}}-{{.Kind}}">{{.Locale}} · {{.Kind}}</a> {{end}}</nav>
{{range .Items}}
<section id="{{.Locale}}-{{.Kind}}">
<h2>{{.Kind}} <small>({{.Locale}})</small></h2>
<p class="subject"><strong>Subject:</strong> {{.Subject}}</p>
<div class="pair">
<div><h3>HTML</h3><iframe sandbox="" loading="lazy" title="{{.Kind}} {{.Locale}} HTML" src="{{.Locale}}/{{.Kind}}/html"></iframe></div>
<div><h3>Text</h3><pre>{{.Text}}</pre></div>
</div>
</section>
{{end}}
</body>
</html>
`))

func (r *Renderer) previewIndex(w http.ResponseWriter, _ *http.Request) {
	var items []Message
	for _, locale := range Locales() {
		for _, kind := range billing.AllNotificationKinds() {
			m, err := r.Render(kind, locale, SampleData(kind, locale))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			items = append(items, m)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = previewPage.Execute(w, struct {
		Product string
		Items   []Message
	}{r.cfg.ProductName, items})
}
