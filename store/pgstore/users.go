package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/renewkit/renewkit/billing"
)

var userCols = `id, email, name, locale, timezone, plan_id, subscription_id, subscription_status, ` + z("access_until") + `, created_at, updated_at, flag_del`

func scanUser(r pgx.Rows) (billing.User, error) {
	var u billing.User
	var status string
	err := r.Scan(&u.ID, &u.Email, &u.Name, &u.Locale, &u.TimeZone, &u.PlanID, &u.SubscriptionID, &status,
		&u.AccessUntil, &u.CreatedAt, &u.UpdatedAt, &u.Deleted)
	u.Status = billing.SubscriptionStatus(status)
	u.AccessUntil, u.CreatedAt, u.UpdatedAt = t0(u.AccessUntil), t0(u.CreatedAt), t0(u.UpdatedAt)
	return u, err
}

// InsertUser stores u, assigning its ID when empty; ErrConflict on a duplicate id.
func (s *Store) InsertUser(ctx context.Context, u *billing.User) error {
	if u.ID == "" {
		u.ID = billing.NewID()
	}
	_, err := s.exec(ctx, s.t(`INSERT INTO {schema}.users (id, email, name, locale, timezone, plan_id, subscription_id,
		subscription_status, access_until, created_at, updated_at, flag_del)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`),
		u.ID, u.Email, u.Name, u.Locale, u.TimeZone, u.PlanID, u.SubscriptionID, string(u.Status),
		nt(u.AccessUntil), rt(u.CreatedAt), rt(u.UpdatedAt), u.Deleted)
	if err != nil {
		return s.wrap(err, "inserting user %q", u.ID)
	}
	u.AccessUntil, u.CreatedAt, u.UpdatedAt = t0(u.AccessUntil), t0(u.CreatedAt), t0(u.UpdatedAt)
	return nil
}

func (s *Store) GetUser(ctx context.Context, id string) (billing.User, error) {
	return one(ctx, s, scanUser, "user", id, s.t(`SELECT `+userCols+` FROM {schema}.users WHERE id = $1 AND NOT flag_del`), id)
}

// ListUsers returns the live users among ids in one query.
func (s *Store) ListUsers(ctx context.Context, ids []string) ([]billing.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	us, err := collect(ctx, s, scanUser, s.t(`SELECT `+userCols+` FROM {schema}.users WHERE id = ANY($1) AND NOT flag_del`), ids)
	return us, s.wrap(err, "listing %d users", len(ids))
}

// UpdateUsersAccess applies each access change conditionally, the whole batch in one
// statement; see billing.UserStore.
func (s *Store) UpdateUsersAccess(ctx context.Context, changes []billing.UserAccessChange) ([]error, error) {
	// Implementation:
	// UpdateUsersAccess applies each access change conditionally in one UPDATE for the batch;
	// see billing.UserStore. Bits of m: plan_id 1, subscription_id 2, subscription_status 4,
	// access_until 8, updated_at 16.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	errs := make([]error, len(changes))
	// Distinct ids per statement, like UpdateSubscriptions.
	pending := make([]int, 0, len(changes))
	for i := range changes {
		c := &changes[i]
		if c.Read.ID == "" || (c.Changed.ID != "" && c.Changed.ID != c.Read.ID) {
			errs[i] = invalid("user access change for %q names user %q", c.Read.ID, c.Changed.ID)
			continue
		}
		pending = append(pending, i)
	}
	for len(pending) > 0 {
		var round, later []int
		taken := map[string]bool{}
		for _, i := range pending {
			if id := changes[i].Read.ID; taken[id] {
				later = append(later, i)
			} else {
				taken[id] = true
				round = append(round, i)
			}
		}
		if err := s.updateUsers(ctx, changes, round, errs); err != nil {
			return nil, err
		}
		pending = later
	}
	return errs, nil
}

func (s *Store) updateUsers(ctx context.Context, changes []billing.UserAccessChange, idx []int, errs []error) error {
	n := len(idx)
	ids, masks := make([]string, 0, n), make([]int32, 0, n)
	rPlan, rSub, rStatus := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	nPlan, nSub, nStatus := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	nUntil, nUpdated := make(pgtype.FlatArray[pgtype.Timestamptz], 0, n), make(pgtype.FlatArray[pgtype.Timestamptz], 0, n)
	for _, i := range idx {
		r, w := &changes[i].Read, &changes[i].Changed
		var m int32
		if r.PlanID != w.PlanID {
			m |= 1
		}
		if r.SubscriptionID != w.SubscriptionID {
			m |= 2
		}
		if r.Status != w.Status {
			m |= 4
		}
		if !t0(r.AccessUntil).Equal(t0(w.AccessUntil)) {
			m |= 8
		}
		if !t0(r.UpdatedAt).Equal(t0(w.UpdatedAt)) {
			m |= 16
		}
		ids, masks = append(ids, r.ID), append(masks, m)
		rPlan, rSub, rStatus = append(rPlan, r.PlanID), append(rSub, r.SubscriptionID), append(rStatus, string(r.Status))
		nPlan, nSub, nStatus = append(nPlan, w.PlanID), append(nSub, w.SubscriptionID), append(nStatus, string(w.Status))
		nUntil = append(nUntil, nt(w.AccessUntil))
		nUpdated = append(nUpdated, pgtype.Timestamptz{Time: rt(w.UpdatedAt), Valid: true})
	}
	got, err := collect(ctx, s, func(r pgx.Rows) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, s.t(`UPDATE {schema}.users AS u SET
			plan_id = CASE WHEN v.m & 1 <> 0 THEN v.n_plan ELSE u.plan_id END,
			subscription_id = CASE WHEN v.m & 2 <> 0 THEN v.n_sub ELSE u.subscription_id END,
			subscription_status = CASE WHEN v.m & 4 <> 0 THEN v.n_status ELSE u.subscription_status END,
			access_until = CASE WHEN v.m & 8 <> 0 THEN v.n_until ELSE u.access_until END,
			updated_at = CASE WHEN v.m & 16 <> 0 THEN v.n_updated ELSE u.updated_at END
		FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::timestamptz[], $10::timestamptz[]) AS v(id, m, r_plan, r_sub, r_status, n_plan, n_sub, n_status, n_until, n_updated)
		WHERE u.id = v.id AND u.id = ANY($1::text[]) AND NOT u.flag_del AND u.plan_id = v.r_plan AND u.subscription_id = v.r_sub
			AND u.subscription_status = v.r_status
		RETURNING u.id`),
		ids, masks, rPlan, rSub, rStatus, nPlan, nSub, nStatus, nUntil, nUpdated)
	if err != nil {
		return s.wrap(err, "updating the access of %d users", n)
	}
	applied := make(map[string]bool, len(got))
	for _, id := range got {
		applied[id] = true
	}
	return s.tellMissed(ctx, "users", "user", "changed since it was read (its plan, subscription or status differs)",
		idx, func(i int) string { return changes[i].Read.ID }, applied, errs)
}
