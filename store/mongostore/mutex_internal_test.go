package mongostore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// mutexStores returns n Stores in ClaimSerialized mode, each with a client of its own, on
// one new database (dropped at the end).
func mutexStores(t *testing.T, n int) []*Store {
	t.Helper()
	uri := testkit.MongoURI(t)
	name := testkit.DBName("rkmutex")
	var out []*Store
	for range n {
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		st, err := New(c.Database(name), Config{ClaimMode: ClaimSerialized})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	t.Cleanup(func() { _ = out[0].db.Drop(context.Background()) })
	if err := out[0].EnsureIndexes(context.Background()); err != nil {
		t.Fatal(err)
	}
	return out
}

func keyDocCount(t *testing.T, st *Store, key string) int64 {
	t.Helper()
	n, err := st.locks.CountDocuments(context.Background(), bson.D{{Key: "key", Value: key}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Three Stores loop acquire / work / release on one store mutex and are never inside
// together; a released mutex leaves no document behind.
func TestStoreMutexMutualExclusion(t *testing.T) {
	stores := mutexStores(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const key = "mongostore.mutex/test"
	var inside, entered atomic.Int32
	var wg sync.WaitGroup
	for _, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				l, err := st.acquireMutex(ctx, key, newToken(), time.Now(), 30*time.Second)
				if errors.Is(err, billing.ErrLockHeld) {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					t.Errorf("acquireMutex: %v", err)
					return
				}
				if inside.Add(1) != 1 {
					t.Error("entered while another Store held the mutex")
				}
				entered.Add(1)
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				if err := st.releaseMutex(ctx, l); err != nil {
					t.Errorf("releaseMutex: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if entered.Load() < 3 {
		t.Fatalf("the mutex was taken %d times, want at least 3", entered.Load())
	}
	if n := keyDocCount(t, stores[0], key); n != 0 {
		t.Fatalf("%d lock documents left for a released mutex, want 0", n)
	}
}

// The store mutex and leases read each other: a live lease of the key holds the mutex off,
// a held mutex holds AcquireLock off, and documents that are not live (an expired holder, a
// lease released by marking) are taken over with a token above them and removed.
func TestStoreMutexAgainstLeases(t *testing.T) {
	st := mutexStores(t, 1)[0]
	ctx := context.Background()
	const key = "mongostore.mutex/mixed"
	now := time.Now()
	lease, err := st.AcquireLock(ctx, key, "lease-holder", now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.acquireMutex(ctx, key, "m1", now, time.Minute); !errors.Is(err, billing.ErrLockHeld) {
		t.Fatalf("acquireMutex under a live lease: %v, want ErrLockHeld", err)
	}
	if n := keyDocCount(t, st, key); n != 1 {
		t.Fatalf("%d documents after a refused acquisition, want the lease's 1", n)
	}
	if err := st.ReleaseLock(ctx, lease); err != nil {
		t.Fatal(err)
	}
	// A dead holder's expired document with a higher token, next to the released lease.
	expired := lockDoc{Key: key, Owner: "dead", Token: lease.Token + 4, ExpiresAt: now.Add(-time.Second)}
	if _, err := st.locks.InsertOne(ctx, bson.D{{Key: "_id", Value: lockID(key, expired.Token)}, {Key: "key", Value: key},
		{Key: "owner", Value: expired.Owner}, {Key: "token", Value: expired.Token},
		{Key: "expires_at", Value: bson.NewDateTimeFromTime(expired.ExpiresAt)}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.acquireMutex(ctx, key, "m2", now, time.Minute)
	if err != nil {
		t.Fatalf("acquireMutex over an expired and a released document: %v", err)
	}
	if m.Token != expired.Token+1 {
		t.Fatalf("token %d, want %d (above every document of the key)", m.Token, expired.Token+1)
	}
	if n := keyDocCount(t, st, key); n != 1 {
		t.Fatalf("%d documents while the mutex is held, want 1: the stale ones are removed", n)
	}
	if _, err := st.AcquireLock(ctx, key, "lease-holder", now, time.Minute); !errors.Is(err, billing.ErrLockHeld) {
		t.Fatalf("AcquireLock under a held mutex: %v, want ErrLockHeld", err)
	}
	if _, err := st.acquireMutex(ctx, key, "m3", now, time.Minute); !errors.Is(err, billing.ErrLockHeld) {
		t.Fatalf("acquireMutex under a held mutex: %v, want ErrLockHeld", err)
	}
	if err := st.releaseMutex(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n := keyDocCount(t, st, key); n != 0 {
		t.Fatalf("%d documents after release, want 0", n)
	}
	if _, err := st.acquireMutex(ctx, key, "m4", now, time.Minute); err != nil {
		t.Fatalf("acquireMutex on a free key: %v", err)
	}
}

// A contender that read the key's documents before they were taken over and released
// tries a token above every document left while a newer acquisition with a lower token
// holds: it sees the holder and does not hold.
func TestStoreMutexStaleTokenDoesNotHold(t *testing.T) {
	st := mutexStores(t, 1)[0]
	ctx := context.Background()
	const key = "mongostore.mutex/stale"
	now := time.Now()
	holder, err := st.acquireMutex(ctx, key, "holder", now, time.Minute)
	if err != nil || holder.Token != 1 {
		t.Fatalf("acquireMutex on a free key: %+v %v, want token 1", holder, err)
	}
	_, ok, _, err := st.tryMutex(ctx, key, "stale", 6, now, time.Minute)
	if ok || !errors.Is(err, billing.ErrLockHeld) {
		t.Fatalf("a stale token above the holder's: ok %v, %v; want ErrLockHeld", ok, err)
	}
	if n := keyDocCount(t, st, key); n != 1 {
		t.Fatalf("%d documents, want the holder's 1", n)
	}
}
