package mongostore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/mongostore"
)

// A job state written before versions existed has no version field: it reads as version 0
// and a put at version 0 replaces it (no duplicate document), while a put at another
// version conflicts.
func TestJobStateWithoutVersionField(t *testing.T) {
	ctx, db, st := freshStore(t, mongostore.Config{}, time.Minute)
	at := time.Date(2031, 5, 10, 9, 0, 0, 0, time.UTC)
	if _, err := db.Collection("job_states").InsertOne(ctx, bson.M{
		"_id": "renew", "paused": true, "paused_at": at, "consecutive_failures": 2, "updated_at": at,
	}); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetJobState(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 0 || !got.Paused || got.ConsecutiveFailures != 2 {
		t.Fatalf("old document read as %+v, want paused, 2 failures, version 0", got)
	}
	stale := got
	stale.Version = 1
	if err := st.PutJobState(ctx, stale); !errors.Is(err, billing.ErrConflict) {
		t.Fatalf("PutJobState(version 1) over a document without version: %v, want ErrConflict", err)
	}
	got.Paused, got.PausedAt = false, time.Time{}
	if err := st.PutJobState(ctx, got); err != nil {
		t.Fatalf("PutJobState(version 0) over a document without version: %v", err)
	}
	n, err := db.Collection("job_states").CountDocuments(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.GetJobState(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || again.Version != 1 || again.Paused || again.ConsecutiveFailures != 2 {
		t.Fatalf("after the put: %d documents, state %+v; want 1 document, version 1, not paused, 2 failures", n, again)
	}
}

// Replicas (separate Stores on one database) writing the same version of a job state:
// exactly one wins each round, on MongoDB by the atomic filter and on FerretDB by the
// store-level mutex.
func TestJobStateReplicasOneWins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := freshDB(t, client(t))
	const replicas = 4
	stores := make([]*mongostore.Store, replicas)
	for i := range stores {
		stores[i] = newStore(t, db, mongostore.Config{})
	}
	for version := range int64(5) {
		errs := make([]error, replicas)
		start := make(chan struct{})
		done := make(chan int, replicas)
		for i, st := range stores {
			go func() {
				<-start
				errs[i] = st.PutJobState(ctx, billing.JobState{JobID: "renew", ConsecutiveFailures: i, Version: version})
				done <- i
			}()
		}
		close(start)
		for range replicas {
			<-done
		}
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, billing.ErrConflict):
				t.Fatalf("version %d, replica %d: %v, want nil or ErrConflict", version, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("version %d: %d replicas stored it, want exactly 1 (%v)", version, winners, errs)
		}
		got, err := stores[0].GetJobState(ctx, "renew")
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != version+1 {
			t.Fatalf("after round %d the version is %d, want %d", version, got.Version, version+1)
		}
	}
}
