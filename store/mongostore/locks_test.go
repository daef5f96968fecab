package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/mongostore"
)

// Three contenders, each with its own client: one holder at a time, takeover after the
// holder stops renewing, and a stale holder (lower token) can neither extend nor release the
// new holder's lease.
func TestLeaseLockThreeContenders(t *testing.T) {
	db := freshDB(t, client(t))
	stores := make([]*mongostore.Store, 3)
	for i := range stores {
		stores[i] = newStore(t, newClient(t).Database(db.Name()), testConfig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const key, ttl = "job:process_expired_subscriptions", 10 * time.Second
	t0 := time.Date(2031, 1, 1, 0, 30, 0, 0, time.UTC)

	contend := func(now time.Time, who []int) (winners []int, leases map[int]billing.Lease) {
		var mu sync.Mutex
		leases = map[int]billing.Lease{}
		var wg sync.WaitGroup
		for _, i := range who {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := stores[i].AcquireLock(ctx, key, fmt.Sprintf("replica-%d", i), now, ttl)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, i)
					leases[i] = l
					mu.Unlock()
				case !errors.Is(err, billing.ErrLockHeld):
					t.Errorf("replica %d: AcquireLock: %v", i, err)
				}
			}()
		}
		wg.Wait()
		return winners, leases
	}

	winners, leases := contend(t0, []int{0, 1, 2})
	if len(winners) != 1 {
		t.Fatalf("first round: winners %v, want exactly one", winners)
	}
	first := winners[0]
	held := leases[first]

	// The holder renews; the others keep failing while the lease is live.
	held, err := stores[first].RenewLock(ctx, held, t0.Add(5*time.Second), ttl)
	if err != nil {
		t.Fatalf("RenewLock by the holder: %v", err)
	}
	if w, _ := contend(t0.Add(14*time.Second), others(first)); len(w) != 0 {
		t.Fatalf("acquired by %v while the renewed lease is live", w)
	}

	// The holder stops renewing; after expiry exactly one of the others takes over.
	winners, leases = contend(t0.Add(16*time.Second), others(first))
	if len(winners) != 1 {
		t.Fatalf("takeover: winners %v, want exactly one", winners)
	}
	second := winners[0]
	taken := leases[second]
	if taken.Token <= held.Token {
		t.Fatalf("takeover token %d not above the stale holder's %d", taken.Token, held.Token)
	}

	// The stale holder can neither extend nor release the new lease.
	if _, err := stores[first].RenewLock(ctx, held, t0.Add(16*time.Second), ttl); !errors.Is(err, billing.ErrLockLost) {
		t.Fatalf("stale RenewLock: %v, want ErrLockLost", err)
	}
	if err := stores[first].ReleaseLock(ctx, held); !errors.Is(err, billing.ErrLockLost) {
		t.Fatalf("stale ReleaseLock: %v, want ErrLockLost", err)
	}
	if _, err := stores[first].AcquireLock(ctx, key, "replica-0", t0.Add(17*time.Second), ttl); !errors.Is(err, billing.ErrLockHeld) {
		t.Fatalf("AcquireLock while the new lease is live: %v, want ErrLockHeld", err)
	}
	if taken, err = stores[second].RenewLock(ctx, taken, t0.Add(20*time.Second), ttl); err != nil {
		t.Fatalf("new holder's RenewLock after the stale holder's attempts: %v", err)
	}

	// Release frees the key at once; the token keeps growing.
	if err := stores[second].ReleaseLock(ctx, taken); err != nil {
		t.Fatalf("ReleaseLock: %v", err)
	}
	winners, leases = contend(t0.Add(21*time.Second), []int{0, 1, 2})
	if len(winners) != 1 || leases[winners[0]].Token != taken.Token+1 {
		t.Fatalf("after release: winners %v leases %v, want one winner with token %d", winners, leases, taken.Token+1)
	}
}

// Mutual exclusion under real time: three contenders loop acquire / work / release and are
// never inside the critical section together.
func TestLeaseLockMutualExclusion(t *testing.T) {
	db := freshDB(t, client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var inside, entered atomic.Int32
	var lastToken atomic.Int64
	var wg sync.WaitGroup
	for i := range 3 {
		st := newStore(t, newClient(t).Database(db.Name()), testConfig)
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("replica-%d", i)
			for range 15 {
				l, err := st.AcquireLock(ctx, "mutex", owner, time.Now(), 30*time.Second)
				if errors.Is(err, billing.ErrLockHeld) {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					t.Errorf("%s: AcquireLock: %v", owner, err)
					return
				}
				if inside.Add(1) != 1 {
					t.Errorf("%s entered while another contender held the lock", owner)
				}
				if prev := lastToken.Swap(l.Token); prev >= l.Token {
					t.Errorf("token went from %d to %d", prev, l.Token)
				}
				entered.Add(1)
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				if err := st.ReleaseLock(ctx, l); err != nil {
					t.Errorf("%s: ReleaseLock: %v", owner, err)
				}
			}
		}()
	}
	wg.Wait()
	if entered.Load() == 0 {
		t.Fatal("nobody ever acquired the lock")
	}
}

func others(i int) []int {
	var out []int
	for j := range 3 {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}
