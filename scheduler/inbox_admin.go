package scheduler

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// InboxOptions configure InboxAdminHandler.
type InboxOptions struct {
	// Authorize is required: the same check as AdminOptions.Authorize.
	Authorize Authorizer
	// Identify names the operator of a replay for the audit log; default OperatorHeader.
	Identify Identify
	Logger   *slog.Logger
}

type inboxAdmin struct {
	svc      *billing.Service
	identify Identify
	log      *slog.Logger
}

// inboxEvent is an event as the admin API shows it: the payload is left out (it carries
// personal data); its attempts are in history.
type inboxEvent struct {
	billing.WebhookEvent
	AgeSeconds float64 `json:"age_seconds"`
}

// InboxAdminHandler serves the webhook inbox operations, relative to where the host mounts
// it (the standalone server uses /api/admin/inbox):
//
//	GET  /events?status=&gateway=&limit=&cursor=     {"events":[...],"next_cursor":"..."}
//	GET  /events/{gateway}/{event_id}                one event with its attempts and errors
//	POST /events/{gateway}/{event_id}/replay         process a failed, dead or ignored event again (audited)
//	GET  /stats                                      billing.WebhookInboxStats
//
// Every request is authorized first (401, 403). Errors are JSON: 400 bad query, 404 unknown
// event, 405 wrong method, 409 replay of an event that is not failed, dead or ignored.
func InboxAdminHandler(svc *billing.Service, opts InboxOptions) (http.Handler, error) {
	if err := invalid(
		check(svc != nil, "nil billing service: pass the one from billing.NewService"),
		check(opts.Authorize != nil, "InboxOptions.Authorize is required: "+authorizeFix),
	); err != nil {
		return nil, err
	}
	a := &inboxAdmin{svc: svc, identify: opts.Identify, log: opts.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.identify == nil {
		a.identify = OperatorHeader
	}
	return apiMux(opts.Authorize, map[string]http.HandlerFunc{
		"GET /events":                              a.list,
		"GET /events/{gateway}/{event_id}":         a.get,
		"POST /events/{gateway}/{event_id}/replay": a.replay,
		"GET /stats":                               a.stats,
	}), nil
}

func (a *inboxAdmin) show(ev billing.WebhookEvent) inboxEvent {
	return inboxEvent{WebhookEvent: ev, AgeSeconds: a.svc.Clock().Now().Sub(ev.ReceivedAt).Seconds()}
}

func (a *inboxAdmin) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := billing.WebhookEventQuery{State: billing.WebhookEventState(q.Get("status")), Gateway: q.Get("gateway"), After: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "limit must be a positive number")
			return
		}
		query.Limit = n
	}
	evs, next, err := a.svc.ListWebhookEvents(r.Context(), query)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]inboxEvent, len(evs))
	for i, ev := range evs {
		ev.History = nil // per event, at GET /events/{gateway}/{event_id}
		out[i] = a.show(ev)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": next})
}

func (a *inboxAdmin) get(w http.ResponseWriter, r *http.Request) {
	ev, err := a.svc.WebhookEvent(r.Context(), r.PathValue("gateway"), r.PathValue("event_id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ev.Payload = nil
	writeJSON(w, http.StatusOK, a.show(ev))
}

func (a *inboxAdmin) replay(w http.ResponseWriter, r *http.Request) {
	ev, err := a.svc.ReplayWebhookEventBy(r.Context(), r.PathValue("gateway"), r.PathValue("event_id"), a.identify(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "webhook event replayed from the admin API", "gateway", ev.Gateway, "event_id", ev.EventID)
	ev.Payload = nil
	writeJSON(w, http.StatusOK, a.show(ev))
}

func (a *inboxAdmin) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.svc.WebhookInboxStats(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = a.svc.Clock().Now().Sub(st.OldestPending).Round(time.Millisecond).Seconds()
	}
	writeJSON(w, http.StatusOK, map[string]any{"by_state": st.ByState, "oldest_pending": st.OldestPending, "oldest_pending_age_seconds": age})
}

func (a *inboxAdmin) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, billing.ErrInvalidInput):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, billing.ErrNotFound):
		writeError(w, http.StatusNotFound, "webhook event not found")
	case errors.Is(err, billing.ErrInvalidTransition):
		writeError(w, http.StatusConflict, "only failed, dead or ignored events can be replayed")
	default:
		a.log.ErrorContext(r.Context(), "admin inbox request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}
