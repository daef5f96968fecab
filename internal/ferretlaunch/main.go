// Command ferretlaunch starts an embedded FerretDB v1 server for tests.
//
// By default it uses the SQLite backend in a temporary directory (removed on
// exit); -backend postgresql -postgresql-url URL uses FerretDB v1's production
// backend, PostgreSQL, instead (the database must exist; FerretDB keeps each
// MongoDB database in a schema of it). It listens on 127.0.0.1 on a free port
// (or -addr), prints the MongoDB URI on stdout and serves until SIGINT or
// SIGTERM. Telemetry is disabled by the embeddable package.
//
// It lives in its own module so the library's go.mod does not depend on
// FerretDB. Build and start it with scripts/ferretdb.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretlaunch:", err)
		os.Exit(1)
	}
}

// sqliteURL returns the SQLite backend URI for dir. Without durable, commits do not fsync
// (synchronous=OFF): FerretDB v1 commits every updated document on its own, so with fsync an
// updateMany of 100 documents takes seconds.
func sqliteURL(dir string, durable bool) string {
	u := "file:" + dir + "/"
	if !durable {
		u += "?_pragma=synchronous(OFF)"
	}
	return u
}

// poolMaxConns is the PostgreSQL connection pool size the launcher gives FerretDB unless the
// URL sets pool_max_conns. FerretDB's default is 50, and FerretDB v1.24.2 keeps one pooled
// connection open for every update statement of an update command until the whole command
// ends (msg_update.go defers each statement's iterator close inside its loop), plus one to
// write: a bulkWrite of 50 or more updates then waits for a connection for ever. The same
// happens on SQLite at 100 (its pool size).
const poolMaxConns = "400"

// postgresqlURL sets pool_max_conns on u unless it is set.
func postgresqlURL(u string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("bad -postgresql-url: %w", err)
	}
	q := parsed.Query()
	if !q.Has("pool_max_conns") {
		q.Set("pool_max_conns", poolMaxConns)
	}
	parsed.RawQuery = q.Encode()
	return parsed.String(), nil
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "TCP listen address")
	backend := flag.String("backend", "sqlite", "storage backend: sqlite or postgresql")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL connection URL for -backend postgresql (e.g. postgres://postgres@127.0.0.1:5432/ferretdb?sslmode=disable; pool_max_conns defaults to "+poolMaxConns+" here)")
	dir := flag.String("dir", "", "SQLite data directory (default: a new temporary directory, removed on exit)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	durable := flag.Bool("durable", false, "keep SQLite's fsync on every commit (off by default: a test server trades durability for speed)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("bad -log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	conf := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *addr},
		Logger:   logger,
		Handler:  *backend,
	}
	switch *backend {
	case "sqlite":
		if *pgURL != "" {
			return fmt.Errorf("-postgresql-url needs -backend postgresql")
		}
		dataDir := *dir
		if dataDir == "" {
			tmp, err := os.MkdirTemp("", "ferretlaunch-*")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dataDir = tmp
		}
		conf.SQLiteURL = sqliteURL(dataDir, *durable)
	case "postgresql":
		if *pgURL == "" {
			return fmt.Errorf("-backend postgresql needs -postgresql-url")
		}
		if *dir != "" || *durable {
			return fmt.Errorf("-dir and -durable are for -backend sqlite")
		}
		u, err := postgresqlURL(*pgURL)
		if err != nil {
			return err
		}
		conf.PostgreSQLURL = u
	default:
		return fmt.Errorf("bad -backend %q: use sqlite or postgresql", *backend)
	}

	f, err := ferretdb.New(conf)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// MongoDBURI waits until the listener is bound.
	fmt.Println(f.MongoDBURI())

	return <-done
}
