package scheduler

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/renewkit/renewkit/billing"
)

// Authorizer decides whether a request may use the admin API. It returns nil for an
// administrator, an error wrapping ErrForbidden for an authenticated caller without the
// admin role (403) and any other error, typically ErrUnauthenticated, otherwise (401).
type Authorizer func(r *http.Request) error

// AdminOptions configures AdminHandler.
type AdminOptions struct {
	// Authorize is required: the host's admin check (such as a require_admin check) or
	// BearerToken(os.Getenv("ADMIN_TOKEN")).
	Authorize Authorizer
	// HistoryLimit is how many recent runs GET /{job_id} returns. Default 20.
	HistoryLimit int
	// Analytics, when set, adds business figures (billing.Service.Analytics) to
	// GET /stats/summary under "analytics".
	Analytics func(ctx context.Context) (any, error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// BearerToken returns an Authorizer accepting "Authorization: Bearer <token>" with the
// given token, compared in constant time. An empty token accepts nobody.
func BearerToken(token string) Authorizer {
	want := sha256.Sum256([]byte(token))
	return func(r *http.Request) error {
		h := r.Header.Get("Authorization")
		if h == "" {
			return ErrUnauthenticated
		}
		scheme, got, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
			return ErrUnauthenticated
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if token == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return fmt.Errorf("%w: invalid token", ErrUnauthenticated)
		}
		return nil
	}
}

type admin struct {
	s         *Scheduler
	limit     int
	log       *slog.Logger
	analytics func(ctx context.Context) (any, error)
}

// AdminHandler serves the jobs admin API, relative to where the host mounts it (for
// example under /api/admin/jobs with http.StripPrefix):
//
//	GET  /                   {"total":5,"jobs":[JobInfo...]}
//	GET  /{job_id}           {"job":JobInfo,"runs":[billing.JobRun...]}
//	POST /{job_id}/pause     JobInfo
//	POST /{job_id}/resume    JobInfo
//	POST /{job_id}/trigger   billing.JobRun (?async=true: 202 {"run_id":...})
//	GET  /{job_id}/preview   what the job would do now, changing nothing (404 without one)
//	GET  /stats/summary      Stats (plus "analytics" with AdminOptions.Analytics)
//
// Every request is authorized first. Errors are JSON {"error": "..."}: 401, 403, 404
// unknown job or route, 405 wrong method (with Allow), 409 trigger while running, 503
// after Shutdown.
func AdminHandler(s *Scheduler, opts AdminOptions) (http.Handler, error) {
	if err := invalid(
		check(s != nil, "nil scheduler: pass the *Scheduler from scheduler.NewScheduler"),
		check(opts.Authorize != nil, "AdminOptions.Authorize is required: "+authorizeFix),
		check(opts.HistoryLimit >= 0, fmt.Sprintf("AdminOptions.HistoryLimit %d is negative: use 0 for the default 20", opts.HistoryLimit)),
	); err != nil {
		return nil, err
	}
	a := &admin{s: s, limit: opts.HistoryLimit, log: opts.Logger, analytics: opts.Analytics}
	if a.limit == 0 {
		a.limit = 20
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	return apiMux(opts.Authorize, map[string]http.HandlerFunc{
		"GET /{$}":               a.list,
		"GET /stats/summary":     a.stats,
		"GET /{job_id}":          a.get,
		"GET /{job_id}/preview":  a.preview,
		"POST /{job_id}/pause":   a.pause,
		"POST /{job_id}/resume":  a.resume,
		"POST /{job_id}/trigger": a.trigger,
	}), nil
}

func (a *admin) list(w http.ResponseWriter, r *http.Request) {
	jobs, err := a.s.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Total int       `json:"total"`
		Jobs  []JobInfo `json:"jobs"`
	}{len(jobs), jobs})
}

func (a *admin) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("job_id")
	info, err := a.s.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	runs, err := a.s.History(r.Context(), id, a.limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if runs == nil {
		runs = []billing.JobRun{}
	}
	writeJSON(w, http.StatusOK, struct {
		Job  JobInfo          `json:"job"`
		Runs []billing.JobRun `json:"runs"`
	}{info, runs})
}

func (a *admin) pause(w http.ResponseWriter, r *http.Request)  { a.setPaused(w, r, true) }
func (a *admin) resume(w http.ResponseWriter, r *http.Request) { a.setPaused(w, r, false) }

func (a *admin) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	id := r.PathValue("job_id")
	var err error
	if paused {
		err = a.s.Pause(r.Context(), id)
	} else {
		err = a.s.Resume(r.Context(), id)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	info, err := a.s.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (a *admin) trigger(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("job_id")
	if r.URL.Query().Get("async") == "true" {
		runID, err := a.s.TriggerAsync(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"run_id": runID, "job_id": id, "status": string(billing.RunStatusRunning)})
		return
	}
	run, err := a.s.Trigger(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (a *admin) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.s.Stats(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.analytics == nil {
		writeJSON(w, http.StatusOK, st)
		return
	}
	an, err := a.analytics(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Stats
		Analytics any `json:"analytics"`
	}{st, an})
}

func (a *admin) preview(w http.ResponseWriter, r *http.Request) {
	p, err := a.s.Preview(r.Context(), r.PathValue("job_id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (a *admin) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrUnknownJob):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrJobRunning):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNoPreview):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		a.log.ErrorContext(r.Context(), "admin jobs request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
