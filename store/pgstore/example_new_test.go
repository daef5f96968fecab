package pgstore_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/store/pgstore"
)

// ExampleNew backs a billing service with PostgreSQL. It needs a server, so go test
// compiles it but has no Output to check.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := pgstore.New(pool, pgstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	// Migrate creates schema renewkit and its tables, or updates them.
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	notifier, err := lognotify.NewNotifier(lognotify.Config{})
	if err != nil {
		log.Fatal(err)
	}
	svc, err := billing.NewService(st, notifier, billing.Config{})
	if err != nil {
		log.Fatal(err)
	}
	_ = svc
}
