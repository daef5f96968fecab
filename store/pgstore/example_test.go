package pgstore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/store/pgstore"
)

// Example connects, migrates and uses the store. It needs a server, so it is compiled by
// go test but has no Output to check.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := pgstore.New(pool, pgstore.Config{Schema: "renewkit"})
	if err != nil {
		log.Fatal(err)
	}
	// Every replica may migrate on start: an advisory lock makes them do it once.
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	counts, err := st.CountSubscriptionsByStatus(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("active subscriptions:", counts["active"])
}
