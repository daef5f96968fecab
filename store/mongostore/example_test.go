package mongostore_test

import (
	"context"
	"log"
	"os"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/store/mongostore"
)

// ExampleNew opens the application's own database, creates the indexes renewkit's queries
// use and backs a billing service with it. It needs a server, so go test compiles it but
// has no Output to check.
func ExampleNew() {
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv("MONGODB_URI")))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	st, err := mongostore.New(client.Database("app"), mongostore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.EnsureIndexes(ctx); err != nil {
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
