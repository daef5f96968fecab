// Command ferretlaunch starts an embedded FerretDB v1 server for tests.
//
// It uses the SQLite backend in a temporary directory (removed on exit),
// listens on 127.0.0.1 on a free port (or -addr), prints the MongoDB URI
// on stdout and serves until SIGINT or SIGTERM. Telemetry is disabled by
// the embeddable package.
//
// It lives in its own module so the library's go.mod does not depend on
// FerretDB. Build and start it with scripts/ferretdb.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
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

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "TCP listen address")
	dir := flag.String("dir", "", "SQLite data directory (default: a new temporary directory, removed on exit)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	durable := flag.Bool("durable", false, "keep SQLite's fsync on every commit (off by default: a test server trades durability for speed)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("bad -log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dataDir := *dir
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "ferretlaunch-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dataDir = tmp
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL(dataDir, *durable),
	})
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
