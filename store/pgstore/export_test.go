package pgstore

import "context"

// MigrateTo applies the migrations up to version only, so tests can start from an older
// schema.
func (s *Store) MigrateTo(ctx context.Context, version int) error { return s.migrateTo(ctx, version) }

// Retry exposes the bounded retry of single statements.
func (s *Store) Retry(ctx context.Context, f func() error) error { return s.retry(ctx, f) }
