package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/pgstore"
)

// openPostgres connects to DATABASE_URL, checks the server answers and migrates the schema
// (saying so in the log: every replica may do it, an advisory lock makes it happen once).
func (a *app) openPostgres(ctx context.Context) (billing.Store, error) {
	pcfg, err := pgxpool.ParseConfig(a.cfg.DatabaseURL)
	if err != nil {
		// pgx's parse errors can quote the URI, password included: say only where it is.
		return nil, fmt.Errorf("invalid configuration: DATABASE_URL: not a valid PostgreSQL connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: DATABASE_URL: %w", err)
	}
	a.closers = append(a.closers, func(context.Context) error { pool.Close(); return nil })
	st, err := pgstore.New(pool, pgstore.Config{Schema: a.cfg.DatabaseSchema, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: DATABASE_SCHEMA: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		return nil, fmt.Errorf("invalid configuration: DATABASE_URL: server %s not reachable: %w", pcfg.ConnConfig.Host, err)
	}
	a.log.InfoContext(ctx, "migrating the PostgreSQL schema", "schema", st.Schema(), "target_version", pgstore.SchemaVersion())
	if err := st.Migrate(pctx); err != nil {
		return nil, fmt.Errorf("DATABASE_SCHEMA %q: migrating: %w", st.Schema(), err)
	}
	v, err := st.MigratedVersion(pctx)
	if err != nil {
		return nil, err
	}
	a.features = append(a.features, fmt.Sprintf("store: PostgreSQL schema %s (migrated to version %d)", st.Schema(), v))
	return st, nil
}
