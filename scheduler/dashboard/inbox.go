package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/renewkit/renewkit/billing"
)

// InboxSource is what the webhook inbox pages read and do; *billing.Service implements it.
type InboxSource interface {
	ListWebhookEvents(ctx context.Context, q billing.WebhookEventQuery) ([]billing.WebhookEvent, string, error)
	WebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error)
	WebhookInboxStats(ctx context.Context) (billing.WebhookInboxStats, error)
	ReplayWebhookEventBy(ctx context.Context, gateway, eventID, operator string) (billing.WebhookEvent, error)
}

// inboxGateways are the gateway filters the inbox page offers.
var inboxGateways = []string{billing.GatewayStripe, billing.GatewayMercadoPago, billing.GatewayPayPal}

// replayable reports whether the inbox replays an event in state s.
func replayable(s billing.WebhookEventState) bool {
	return s == billing.WebhookEventStateFailed || s == billing.WebhookEventStateDead || s == billing.WebhookEventStateIgnored
}

// eventPath is the dashboard path of an event's page, its segments escaped.
func eventPath(gateway, eventID string) string {
	return "inbox/" + url.PathEscape(gateway) + "/" + url.PathEscape(eventID)
}

type inboxPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	States, Gateways       []statusLink
	Events                 []billing.WebhookEvent
	Total                  int
	OldestPending          string
	Next, Error            string
}

func (d *dash) inbox(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := inboxPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r), Login: d.opts.LoginToken != "", Console: d.opts.Console != nil}
	v := r.URL.Query()
	state, gateway := v.Get("status"), v.Get("gateway")
	stats, err := d.opts.Inbox.WebhookInboxStats(ctx)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	link := filterLink(v, "status", "gateway")
	for _, n := range stats.ByState {
		p.Total += n
	}
	p.States = append(p.States, statusLink{Label: "all " + strconv.Itoa(p.Total), URL: link("status", ""), On: state == ""})
	for _, st := range billing.AllWebhookEventStates() {
		p.States = append(p.States, statusLink{Label: string(st) + " " + strconv.Itoa(stats.ByState[st]), URL: link("status", string(st)), On: state == string(st)})
	}
	p.Gateways = filterChoices(link, "gateway", gateway, "any gateway", inboxGateways)
	if !stats.OldestPending.IsZero() {
		p.OldestPending = formatTime(stats.OldestPending, d.s.Location())
	}
	evs, next, err := d.opts.Inbox.ListWebhookEvents(ctx, billing.WebhookEventQuery{State: billing.WebhookEventState(state), Gateway: gateway,
		After: v.Get("cursor"), Limit: 25})
	if err != nil {
		if errors.Is(err, billing.ErrInvalidInput) {
			p.Error = strings.TrimPrefix(err.Error(), billing.ErrInvalidInput.Error()+": ")
			d.render(w, r, http.StatusBadRequest, "inbox.html", p)
			return
		}
		d.fail(w, r, err)
		return
	}
	p.Events, p.Next = evs, nextPage(r, next)
	d.render(w, r, http.StatusOK, "inbox.html", p)
}

type inboxEventPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	E                      billing.WebhookEvent
	Path                   string
	Replayable             bool
	Flash                  string
}

func (d *dash) inboxEventPage(w http.ResponseWriter, r *http.Request, tmpl string) {
	ev, err := d.opts.Inbox.WebhookEvent(r.Context(), r.PathValue("gateway"), r.PathValue("event_id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	ev.Payload = nil // personal data: never rendered
	if tmpl == "inbox_replay.html" && !replayable(ev.State) {
		d.errorPage(w, r, http.StatusConflict, "Only a failed, dead or ignored event can be replayed; this one is "+string(ev.State)+".")
		return
	}
	d.render(w, r, http.StatusOK, tmpl, inboxEventPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r),
		Login: d.opts.LoginToken != "", Console: d.opts.Console != nil, E: ev, Path: eventPath(ev.Gateway, ev.EventID),
		Replayable: replayable(ev.State), Flash: r.URL.Query().Get("flash")})
}

func (d *dash) inboxEvent(w http.ResponseWriter, r *http.Request) {
	d.inboxEventPage(w, r, "inbox_event.html")
}

// replayConfirm asks before replaying an event.
func (d *dash) replayConfirm(w http.ResponseWriter, r *http.Request) {
	d.inboxEventPage(w, r, "inbox_replay.html")
}

func (d *dash) replay(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.errorPage(w, r, http.StatusForbidden, "Cross-site request refused.")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		d.errorPage(w, r, http.StatusBadRequest, "Confirm the replay on its page first.")
		return
	}
	gateway, id := r.PathValue("gateway"), r.PathValue("event_id")
	ev, err := d.opts.Inbox.ReplayWebhookEventBy(r.Context(), gateway, id, d.identify(r))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	flash := "Replayed " + ev.Type + ": it is received again and the inbox worker processes it shortly"
	seeOther(w, d.rel(r, eventPath(gateway, id))+"?flash="+url.QueryEscape(flash))
}
