package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
)

var _ billing.Store = (*Store)(nil)

// Store implements billing.Store on PostgreSQL through a pgx pool. Create it with New and
// bring its schema up to date with Migrate before first use. It is safe for concurrent use
// by any number of goroutines and replicas sharing one database.
type Store struct {
	pool *pgxpool.Pool
	cfg  Config
	// schema is the quoted schema name, ready to prefix a table.
	schema string
}

// New returns a store working on pool in cfg.Schema. It does not touch the database; call
// Migrate to create or update the tables.
func New(pool *pgxpool.Pool, cfg Config) (*Store, error) {
	var errs []error
	if pool == nil {
		errs = append(errs, errors.New("missing pool: pass pgxpool.New(ctx, \"postgres://...\")"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pgstore: invalid configuration: %w", err)
	}
	cfg = cfg.withDefaults()
	return &Store{pool: pool, cfg: cfg, schema: pgx.Identifier{cfg.Schema}.Sanitize()}, nil
}

// Pool returns the pool the store works on.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema holding the store's tables.
func (s *Store) Schema() string { return s.cfg.Schema }

// Table returns the quoted, schema-qualified name of one of the store's tables
// ("subscriptions", "users", ...), for hosts and tests that read them directly.
func (s *Store) Table(name string) string { return s.schema + "." + pgx.Identifier{name}.Sanitize() }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgstore: ping: %w", err)
	}
	return nil
}

// tables expands {schema} in q.
func tables(schema, q string) string { return strings.ReplaceAll(q, "{schema}", schema) }

// t expands {schema} in q to the store's schema.
func (s *Store) t(q string) string { return tables(s.schema, q) }

// retry runs f, which must run one atomic statement, again after a serialization failure
// or a deadlock, at most cfg.MaxRetries times.
func (s *Store) retry(ctx context.Context, f func() error) error {
	wait := s.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt >= s.cfg.MaxRetries || !retryable(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// exec runs one statement with retries.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := s.retry(ctx, func() error {
		var err error
		tag, err = s.pool.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// collect runs one query with retries and scans every row with scan.
func collect[T any](ctx context.Context, s *Store, scan func(pgx.Rows) (T, error), sql string, args ...any) ([]T, error) {
	var out []T
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			x, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, x)
		}
		return rows.Err()
	})
	if len(out) == 0 {
		out = nil
	}
	return out, err
}

// one runs a query that returns at most one row; no row is ErrNotFound for kind and id.
func one[T any](ctx context.Context, s *Store, scan func(pgx.Rows) (T, error), kind, id, sql string, args ...any) (T, error) {
	var zero T
	xs, err := collect(ctx, s, scan, sql, args...)
	if err != nil {
		return zero, s.wrap(err, "reading %s %q", kind, id)
	}
	if len(xs) == 0 {
		return zero, notFound(kind, id)
	}
	return xs[0], nil
}

// wrap maps a driver error: a unique violation is ErrConflict, a value too long for its
// column ErrInvalidInput; context errors stay matchable.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return fmt.Errorf("pgstore: %s: %s already exists (%s): %w", what, keyOf(pe), pe.ConstraintName, billing.ErrConflict)
		case pe.Code == "22001" || pe.Code == "22003" || strings.HasPrefix(pe.Code, "22"):
			return fmt.Errorf("pgstore: %s: %s: %w", what, pe.Message, billing.ErrInvalidInput)
		}
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

// keyOf names the duplicate key without its values (they may be a customer's ids).
func keyOf(pe *pgconn.PgError) string {
	if i := strings.Index(pe.Detail, ")="); strings.HasPrefix(pe.Detail, "Key (") && i > 0 {
		return "a record with the same " + pe.Detail[len("Key ("):i]
	}
	return "a record with the same key"
}

func notFound(kind, id string) error {
	return fmt.Errorf("pgstore: %s %q: %w", kind, id, billing.ErrNotFound)
}

func conflict(kind, id, why string) error {
	return fmt.Errorf("pgstore: %s %q %s: %w", kind, id, why, billing.ErrConflict)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("pgstore: "+format+": %w", append(args, billing.ErrInvalidInput)...)
}

func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")
}
