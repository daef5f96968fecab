package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/renewkit/renewkit/billing"
)

// ConsoleSource is what the console API reads and does; *billing.Service implements it
// (with a store that has the billing.Console capability).
type ConsoleSource interface {
	SearchSubscriptions(ctx context.Context, q billing.SubscriptionQuery) ([]billing.Subscription, billing.Cursor, error)
	GetSubscription(ctx context.Context, id string) (billing.Subscription, *billing.User, error)
	Timeline(ctx context.Context, subscriptionID string, limit int) (billing.Timeline, error)
	ListPayments(ctx context.Context, q billing.PaymentQuery) ([]billing.Payment, billing.Cursor, error)
	ListNotifications(ctx context.Context, q billing.NotificationQuery) ([]billing.NotificationRecord, billing.Cursor, error)
	GetNotification(ctx context.Context, key string) (billing.NotificationRecord, error)
	ResendNotification(ctx context.Context, key, operator string) (billing.NotificationRecord, error)
	RerunSubscription(ctx context.Context, jobID, subscriptionID, operator string, dryRun bool) (billing.Preview, billing.Result, error)
}

// Identify names the operator behind an authorized request, for the audit log of the
// console's actions.
type Identify func(r *http.Request) string

// ConsoleOptions configures ConsoleHandler.
type ConsoleOptions struct {
	// Authorize is required: the same admin check the jobs API uses.
	Authorize Authorizer
	// Identify names the operator of an action; default: the X-Renewkit-Operator header
	// (see OperatorHeader), else "admin".
	Identify Identify
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// OperatorHeader returns the operator named by the X-Renewkit-Operator request header
// (letters, digits, spaces and .@_- only, at most 64 characters), or "admin". Use it when
// every operator shares one admin token.
func OperatorHeader(r *http.Request) string {
	if name := CleanOperator(r.Header.Get("X-Renewkit-Operator")); name != "" {
		return name
	}
	return "admin"
}

// CleanOperator returns name trimmed, or "" when it is empty, longer than 64 characters or
// has characters other than letters, digits, spaces and .@_-.
func CleanOperator(name string) string {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 {
		return ""
	}
	for _, c := range name {
		ok := c == ' ' || c == '.' || c == '@' || c == '_' || c == '-' ||
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c > 127
		if !ok || c == '\u2028' || c == '\u2029' {
			return ""
		}
	}
	return name
}

type console struct {
	src      ConsoleSource
	identify Identify
	log      *slog.Logger
}

// ConsoleHandler serves the operations console's API, relative to where the host mounts
// it (the standalone server mounts it at /api/admin/):
//
//	GET  /subscriptions?status=&gateway=&plan=&q=&cursor=&limit=   {"subscriptions":[...],"next_cursor":"..."}
//	GET  /subscriptions/{id}            {"subscription":...,"user":...}
//	GET  /subscriptions/{id}/timeline   billing.Timeline (?limit= per source)
//	GET  /subscriptions/{id}/rerun?job= the job's dry run for that subscription's user
//	POST /subscriptions/{id}/rerun?job= run it (audited with the operator)
//	GET  /payments?status=&subscription_id=&cursor=&limit=         {"payments":[...],"next_cursor":"..."}
//	GET  /notifications?kind=&status=&subscription_id=&cursor=&limit= {"notifications":[...],"next_cursor":"..."}
//	POST /notifications/resend?key=     resend an email that failed for good (audited)
//
// status takes several values separated by commas. Lists run newest first; pass
// next_cursor back as cursor for the next page (empty: the last page). Every request is
// authorized first: 401 without credentials, 403 without the admin role; 400 for a bad
// parameter, 404 for an unknown id or route, 405 with Allow, 409 for an action the
// record's state refuses, 501 when the store lacks billing.Console.
func ConsoleHandler(src ConsoleSource, opts ConsoleOptions) (http.Handler, error) {
	if err := invalid(
		check(src != nil, "nil console source: pass the *billing.Service"),
		check(opts.Authorize != nil, "ConsoleOptions.Authorize is required: "+authorizeFix),
	); err != nil {
		return nil, err
	}
	c := &console{src: src, identify: opts.Identify, log: opts.Logger}
	if c.identify == nil {
		c.identify = OperatorHeader
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return apiMux(opts.Authorize, map[string]http.HandlerFunc{
		"GET /subscriptions":               listPage(c, "subscriptions", ParseSubscriptionQuery, c.src.SearchSubscriptions),
		"GET /subscriptions/{id}":          c.subscription,
		"GET /subscriptions/{id}/timeline": c.timeline,
		"GET /subscriptions/{id}/rerun":    c.rerun,
		"POST /subscriptions/{id}/rerun":   c.rerun,
		"GET /payments":                    listPage(c, "payments", parsePaymentQuery, c.src.ListPayments),
		"GET /notifications":               listPage(c, "notifications", ParseNotificationQuery, c.src.ListNotifications),
		"POST /notifications/resend":       c.resend,
	}), nil
}

// errBadParam marks a query parameter the API refuses (400).
var errBadParam = errors.New("bad parameter")

func badParam(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadParam, fmt.Sprintf(format, args...))
}

// page reads cursor and limit.
func page(r *http.Request) (billing.Cursor, int, error) {
	q := r.URL.Query()
	c, err := billing.ParseCursor(q.Get("cursor"))
	if err != nil {
		return c, 0, badParam("cursor is not a next_cursor this API returned")
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > billing.MaxPageSize {
			return c, 0, badParam("limit %q: use 1 to %d", v, billing.MaxPageSize)
		}
	}
	return c, limit, nil
}

// oneOf checks a filter value against the values renewkit writes.
func oneOf[T ~string](name, v string, known []T) (T, error) {
	if v == "" || slices.Contains(known, T(v)) {
		return T(v), nil
	}
	names := make([]string, len(known))
	for i, k := range known {
		names[i] = string(k)
	}
	return "", badParam("%s %q: use one of %s", name, v, strings.Join(names, ", "))
}

// AllSubscriptionStatuses returns the statuses the console filters by, in a new slice each
// call.
func AllSubscriptionStatuses() []billing.SubscriptionStatus {
	return []billing.SubscriptionStatus{billing.SubscriptionStatusPending, billing.SubscriptionStatusActive, billing.SubscriptionStatusPastDue,
		billing.SubscriptionStatusInactive, billing.SubscriptionStatusCancelled}
}

// SubscriptionStatuses are the statuses the console filters by.
//
// Deprecated: use AllSubscriptionStatuses, which a caller cannot change for everyone else.
var SubscriptionStatuses = AllSubscriptionStatuses()

// ParseSubscriptionQuery reads a subscriptions search from URL parameters (status, comma
// separated, gateway, plan, q, cursor, limit).
func ParseSubscriptionQuery(r *http.Request) (billing.SubscriptionQuery, error) {
	v := r.URL.Query()
	after, limit, err := page(r)
	if err != nil {
		return billing.SubscriptionQuery{}, err
	}
	q := billing.SubscriptionQuery{Gateway: strings.TrimSpace(v.Get("gateway")), PlanID: strings.TrimSpace(v.Get("plan")),
		Q: strings.TrimSpace(v.Get("q")), After: after, Limit: limit}
	for _, st := range strings.Split(v.Get("status"), ",") {
		if st = strings.TrimSpace(st); st == "" {
			continue
		}
		s, err := oneOf("status", st, AllSubscriptionStatuses())
		if err != nil {
			return q, err
		}
		q.Statuses = append(q.Statuses, s)
	}
	if len(q.Q) > 200 {
		return q, badParam("q is longer than 200 characters")
	}
	return q, nil
}

// listPage serves a console list: it reads the query with parse, lists with list and
// answers {key: [...], "next_cursor": "..."}, skipping (and logging) unreadable records.
func listPage[Q, T any](c *console, key string, parse func(*http.Request) (Q, error),
	list func(context.Context, Q) ([]T, billing.Cursor, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := parse(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		xs, next, err := list(r.Context(), q)
		if xs, err = partial(c, r, xs, err); err != nil {
			c.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{key: xs, "next_cursor": next.String()})
	}
}

// partial keeps the records of a list that also reported unreadable documents (logged by
// id); any other error is returned.
func partial[T any](c *console, r *http.Request, xs []T, err error) ([]T, error) {
	if xs == nil {
		xs = []T{}
	}
	var re *billing.RecordError
	if err != nil && errors.As(err, &re) {
		c.log.WarnContext(r.Context(), "console list skipped unreadable records; fix the documents", "error", err)
		return xs, nil
	}
	return xs, err
}

func (c *console) subscription(w http.ResponseWriter, r *http.Request) {
	sub, u, err := c.src.GetSubscription(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscription": sub, "user": u})
}

func (c *console) timeline(w http.ResponseWriter, r *http.Request) {
	_, limit, err := page(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	tl, err := c.src.Timeline(r.Context(), r.PathValue("id"), limit)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tl)
}

// parsePaymentQuery reads a payment list query from URL parameters (status,
// subscription_id, cursor, limit).
func parsePaymentQuery(r *http.Request) (billing.PaymentQuery, error) {
	after, limit, err := page(r)
	if err != nil {
		return billing.PaymentQuery{}, err
	}
	v := r.URL.Query()
	st, err := oneOf("status", v.Get("status"), []billing.PaymentStatus{billing.PaymentStatusPending, billing.PaymentStatusApproved,
		billing.PaymentStatusFailed, billing.PaymentStatusCancelled, billing.PaymentStatusRefunded})
	if err != nil {
		return billing.PaymentQuery{}, err
	}
	return billing.PaymentQuery{Status: st, SubscriptionID: v.Get("subscription_id"), After: after, Limit: limit}, nil
}

// AllNotificationStatuses returns the notification record statuses, in a new slice each call.
func AllNotificationStatuses() []string {
	return []string{billing.NotificationSending, billing.NotificationSent, billing.NotificationFailed}
}

// NotificationStatuses are the notification record statuses.
//
// Deprecated: use AllNotificationStatuses, which a caller cannot change for everyone else.
var NotificationStatuses = AllNotificationStatuses()

// ParseNotificationQuery reads an email log query from URL parameters (kind, status,
// subscription_id, cursor, limit).
func ParseNotificationQuery(r *http.Request) (billing.NotificationQuery, error) {
	after, limit, err := page(r)
	if err != nil {
		return billing.NotificationQuery{}, err
	}
	v := r.URL.Query()
	kind, err := oneOf("kind", v.Get("kind"), billing.AllNotificationKinds())
	if err != nil {
		return billing.NotificationQuery{}, err
	}
	st, err := oneOf("status", v.Get("status"), AllNotificationStatuses())
	if err != nil {
		return billing.NotificationQuery{}, err
	}
	return billing.NotificationQuery{Kind: kind, Status: st, SubscriptionID: v.Get("subscription_id"), After: after, Limit: limit}, nil
}

func (c *console) resend(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		c.fail(w, r, badParam("key is required"))
		return
	}
	rec, err := c.src.ResendNotification(r.Context(), key, c.identify(r))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (c *console) rerun(w http.ResponseWriter, r *http.Request) {
	job := r.URL.Query().Get("job")
	if job == "" {
		c.fail(w, r, badParam("job is required: one of %s", strings.Join(billing.RerunJobIDs(), ", ")))
		return
	}
	dry := r.Method != http.MethodPost
	p, res, err := c.src.RerunSubscription(r.Context(), job, r.PathValue("id"), c.identify(r), dry)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if dry {
		writeJSON(w, http.StatusOK, map[string]any{"dry_run": true, "preview": p})
		return
	}
	out := map[string]any{"dry_run": false, "preview": p}
	if m, err := resultMap(res); err == nil {
		out["result"] = m
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *console) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errBadParam):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadParam.Error()+": "))
	case errors.Is(err, billing.ErrConsoleUnsupported):
		writeError(w, http.StatusNotImplemented, err.Error())
	case errors.Is(err, billing.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, billing.ErrInvalidTransition), errors.Is(err, billing.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, billing.ErrUndeliverable):
		writeError(w, http.StatusBadGateway, "delivery failed again; the email log keeps the error")
	case errors.Is(err, billing.ErrInvalidInput):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		c.log.ErrorContext(r.Context(), "admin console request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}
