package pgstore

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded, versioned SQL file: migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("pgstore: migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := range out {
		if out[i].version != i+1 {
			return nil, fmt.Errorf("pgstore: migration versions are not 1..n in order: %d at position %d", out[i].version, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the newest migration this package embeds: the version Migrate brings a
// database to.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// lockKey is the advisory lock key of the schema's migrations: concurrent Migrate calls on
// one schema (replicas starting together) run one after the other.
func (s *Store) lockKey() int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("renewkit/pgstore migrate " + s.cfg.Schema))
	return int64(h.Sum64())
}

// Migrate creates the schema and its tables, or brings them up to SchemaVersion, and says
// what it did on the configured logger. Migrations are forward-only and each runs in its
// own transaction, recorded in the schema_migrations table of the schema; a session-level
// advisory lock makes concurrent callers (replicas starting together) apply each one once.
// A database migrated by a newer renewkit is an error: this one does not know its tables.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateTo(ctx, SchemaVersion())
}

// MigratedVersion returns the newest migration applied to the schema (0 when none).
func (s *Store) MigratedVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.Table("schema_migrations")).Scan(&v)
	if err != nil {
		if isUndefinedTable(err) {
			return 0, nil
		}
		return 0, s.wrap(err, "reading the schema version")
	}
	return v, nil
}

func (s *Store) migrateTo(ctx context.Context, target int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, s.lockKey()); err != nil {
		return fmt.Errorf("pgstore: migrate: taking the advisory lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must go even when ctx ended.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, s.lockKey()); err != nil {
			conn.Conn().PgConn().Close(uctx) // closing the session frees the lock
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.schema); err != nil {
		return fmt.Errorf("pgstore: migrate: creating schema %s: %w", s.cfg.Schema, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.Table("schema_migrations")+` (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("pgstore: migrate: creating the schema_migrations table: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.Table("schema_migrations")).Scan(&current); err != nil {
		return fmt.Errorf("pgstore: migrate: reading the schema version: %w", err)
	}
	if newest := len(ms); current > newest {
		return fmt.Errorf("pgstore: schema %s is at version %d, newer than this renewkit knows (%d): upgrade renewkit; migrations never go backwards",
			s.cfg.Schema, current, newest)
	}
	log := s.cfg.Logger
	if current >= target {
		log.InfoContext(ctx, "pgstore: schema up to date", "schema", s.cfg.Schema, "version", current)
		return nil
	}
	for _, m := range ms[current:target] {
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, tables(s.schema, m.sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+s.Table("schema_migrations")+` (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("pgstore: migration %04d_%s on schema %s failed (nothing of it was applied): %w", m.version, m.name, s.cfg.Schema, err)
		}
		log.InfoContext(ctx, "pgstore: applied migration", "schema", s.cfg.Schema, "version", m.version, "name", m.name,
			"duration", time.Since(start).Round(time.Millisecond))
	}
	log.InfoContext(ctx, "pgstore: schema migrated", "schema", s.cfg.Schema, "from", current, "to", target)
	return nil
}
