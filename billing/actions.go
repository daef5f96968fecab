package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Audit actions of the console's operator actions.
const (
	AuditNotificationResent = "notification.resent"
	AuditSubscriptionRerun  = "subscription.rerun"
)

// ResendNotification sends again the notification with key that failed for good, with
// the data it first rendered, to its user's current address, and audits it with operator
// as the actor. It returns ErrNotFound for an unknown key, ErrInvalidTransition when the
// record is not failed (a sent email is never sent twice), ErrInvalidInput for a record
// kept without its data or an empty operator, and ErrConflict when another resend holds
// it. A delivery error is returned, and the record stays failed with it.
func (s *Service) ResendNotification(ctx context.Context, key, operator string) (NotificationRecord, error) {
	c, err := s.console()
	if err != nil {
		return NotificationRecord{}, err
	}
	if operator == "" {
		return NotificationRecord{}, fmt.Errorf("%w: an action needs the operator's name", ErrInvalidInput)
	}
	rec, err := s.store.GetNotification(ctx, key)
	if err != nil {
		return NotificationRecord{}, err
	}
	if rec.Status != NotificationFailed {
		return rec, fmt.Errorf("%w: notification %s is %s; only one that failed for good is resent", ErrInvalidTransition, key, rec.Status)
	}
	n, err := s.sent(ctx, rec)
	if err != nil {
		return rec, err
	}
	now := s.now()
	token := newToken()
	ok, err := c.RetryNotification(ctx, key, token, now, now.Add(s.cfg.ClaimLease))
	if err != nil {
		return rec, err
	}
	if !ok {
		return rec, fmt.Errorf("%w: notification %s is being resent already", ErrConflict, key)
	}
	sendErr := s.notifier.Notify(ctx, n)
	rec.Token, rec.UpdatedAt = "", s.now()
	rec.Status, rec.Error = NotificationSent, ""
	result := "sent"
	if sendErr != nil {
		rec.Status, rec.Error, result = NotificationFailed, sendErr.Error(), "failed"
	}
	fctx := context.WithoutCancel(ctx)
	if err := s.store.FinishNotifications(fctx, []NotificationRecord{rec}, token); err != nil {
		return rec, fmt.Errorf("recording the resend: %w", err)
	}
	if err := s.audit(fctx, AuditEntry{Action: AuditNotificationResent, EntityType: "subscription", EntityID: rec.SubscriptionID,
		UserID: rec.UserID, Actor: operator, Details: map[string]any{"key": rec.Key, "kind": string(rec.Kind), "result": result}}); err != nil {
		return rec, err
	}
	if sendErr != nil {
		return rec, fmt.Errorf("resending %s: %w", key, sendErr)
	}
	return rec, nil
}

// RerunJobIDs returns the ids of the jobs RerunSubscription can run for one subscription,
// in a new slice each call.
func RerunJobIDs() []string { return []string{JobCheckExpiring, JobProcessExpired, JobRenew} }

// RerunJobs are the jobs RerunSubscription can run for one subscription.
//
// Deprecated: use RerunJobIDs, which a caller cannot change for everyone else.
var RerunJobs = RerunJobIDs()

type scopeKey struct{}

// scoped narrows a job's filter to the user the context's rerun is for.
func scoped(ctx context.Context, f SubscriptionFilter) SubscriptionFilter {
	if uid, ok := ctx.Value(scopeKey{}).(string); ok {
		f.UserIDs = []string{uid}
	}
	return f
}

// RerunSubscription runs the job with jobID (one of RerunJobIDs()) for the subscription's
// user only, exactly as a scheduled run would treat those records. With dryRun it
// changes nothing and returns the job's preview for them; otherwise it runs the job and
// audits the action with operator as the actor. ErrNotFound for an unknown subscription or
// job, ErrInvalidInput for an empty operator.
func (s *Service) RerunSubscription(ctx context.Context, jobID, subscriptionID, operator string, dryRun bool) (Preview, Result, error) {
	if !slices.Contains(RerunJobIDs(), jobID) {
		return Preview{}, nil, fmt.Errorf("%w: job %q cannot run for one subscription; use one of %v", ErrNotFound, jobID, RerunJobIDs())
	}
	if operator == "" && !dryRun {
		return Preview{}, nil, fmt.Errorf("%w: an action needs the operator's name", ErrInvalidInput)
	}
	sub, err := s.store.GetSubscription(ctx, subscriptionID)
	if err != nil {
		return Preview{}, nil, err
	}
	ctx = context.WithValue(ctx, scopeKey{}, sub.UserID)
	p, err := s.Preview(ctx, jobID)
	if err != nil || dryRun {
		return p, nil, err
	}
	var res Result
	switch jobID {
	case JobCheckExpiring:
		res, err = s.CheckExpiringSubscriptions(ctx)
	case JobProcessExpired:
		res, err = s.ProcessExpiredSubscriptions(ctx)
	case JobRenew:
		res, err = s.RenewSubscriptions(ctx)
	}
	details := map[string]any{"job_id": jobID, "would_change": p.Total}
	if res != nil {
		details["found"], details["failures"] = res.Found(), res.Failures()
	}
	if err != nil {
		details["error"] = err.Error()
	}
	if aerr := s.audit(context.WithoutCancel(ctx), AuditEntry{Action: AuditSubscriptionRerun, EntityType: "subscription",
		EntityID: sub.ID, UserID: sub.UserID, Actor: operator, Details: details}); aerr != nil {
		return p, res, errors.Join(err, aerr)
	}
	return p, res, err
}

// SentNotification rebuilds the notification the record with key sent: its kind, key and
// data as rendered, addressed to its user as the user is now (name, address, locale and
// zone). ErrNotFound for an unknown key or a missing user, ErrInvalidInput for a record
// kept without its data.
func (s *Service) SentNotification(ctx context.Context, key string) (Notification, error) {
	rec, err := s.store.GetNotification(ctx, key)
	if err != nil {
		return Notification{}, err
	}
	return s.sent(ctx, rec)
}

func (s *Service) sent(ctx context.Context, rec NotificationRecord) (Notification, error) {
	if rec.Data == nil || rec.UserID == "" {
		return Notification{}, fmt.Errorf("%w: notification %s was recorded without the data it rendered", ErrInvalidInput, rec.Key)
	}
	u, err := s.store.GetUser(ctx, rec.UserID)
	if err != nil {
		return Notification{}, fmt.Errorf("reading the recipient: %w", err)
	}
	return Notification{Kind: rec.Kind, Key: rec.Key, To: recipient(u), Data: *rec.Data}, nil
}
