package memstore

import (
	"cmp"
	"slices"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// inboxIndex holds the pending webhook events (received, failed, parked), so claiming,
// waking, renewing leases and the ordering check look only at events still to process,
// never at the processed, ignored and dead ones that pile up until retention prunes them.
type inboxIndex struct {
	// order lists the pending events in claim order: OccurredAt, ReceivedAt, key.
	order []inboxEntry
	// byObject maps gateway + "\x00" + object key to the keys of that object's pending
	// events.
	byObject map[string]map[string]struct{}
}

type inboxEntry struct {
	occurred, received time.Time
	key                string
}

func newInboxIndex() inboxIndex {
	return inboxIndex{byObject: map[string]map[string]struct{}{}}
}

func inboxEntryOf(k string, ev billing.WebhookEvent) inboxEntry {
	return inboxEntry{occurred: ev.OccurredAt, received: ev.ReceivedAt, key: k}
}

func compareEntries(a, b inboxEntry) int {
	return cmp.Or(a.occurred.Compare(b.occurred), a.received.Compare(b.received), cmp.Compare(a.key, b.key))
}

func objectOf(ev billing.WebhookEvent) string {
	if ev.ObjectKey == "" {
		return ""
	}
	return gwKey(ev.Gateway, ev.ObjectKey)
}

func (ix *inboxIndex) add(k string, ev billing.WebhookEvent) {
	e := inboxEntryOf(k, ev)
	i, found := slices.BinarySearchFunc(ix.order, e, compareEntries)
	if !found {
		ix.order = slices.Insert(ix.order, i, e)
	}
	if o := objectOf(ev); o != "" {
		set := ix.byObject[o]
		if set == nil {
			set = map[string]struct{}{}
			ix.byObject[o] = set
		}
		set[k] = struct{}{}
	}
}

func (ix *inboxIndex) remove(k string, ev billing.WebhookEvent) {
	if i, found := slices.BinarySearchFunc(ix.order, inboxEntryOf(k, ev), compareEntries); found {
		ix.order = deleteAt(ix.order, i)
	}
	if o := objectOf(ev); o != "" {
		if set := ix.byObject[o]; set != nil {
			delete(set, k)
			if len(set) == 0 {
				delete(ix.byObject, o)
			}
		}
	}
}

// deleteAt removes order[i], shifting whichever side of it is shorter. Events are claimed,
// and so mostly finished, from the front of the claim order: removing one shifts the few
// entries before it, not the whole backlog behind it (which slices.Delete would, under the
// inbox's lock, once per finished event).
func deleteAt(order []inboxEntry, i int) []inboxEntry {
	if i >= len(order)/2 {
		return slices.Delete(order, i, i+1)
	}
	copy(order[1:i+1], order[:i])
	order[0] = inboxEntry{} // the slice no longer reaches it: let its key go
	return order[1:]
}

// object returns the keys of the pending events of gateway's object objectKey.
func (ix *inboxIndex) object(gateway, objectKey string) map[string]struct{} {
	return ix.byObject[gwKey(gateway, objectKey)]
}

// setEvent stores ev under k and keeps the pending index in step. Callers hold s.hooks.
func (s *Store) setEvent(k string, ev billing.WebhookEvent) {
	old, had := s.events[k]
	s.events[k] = ev
	wasPending, isPending := had && old.State.Pending(), ev.State.Pending()
	if wasPending && isPending && old.ObjectKey == ev.ObjectKey &&
		old.OccurredAt.Equal(ev.OccurredAt) && old.ReceivedAt.Equal(ev.ReceivedAt) {
		return // a claim, a lease renewal or a retry: same place in the index
	}
	if wasPending {
		s.inbox.remove(k, old)
	}
	if isPending {
		s.inbox.add(k, ev)
	}
}
