// Package memstore is an in-memory billing.Store: every part behind one mutex, safe for
// concurrent use. It passes store/storetest and is the documented test double for hosts, and
// the store of the standalone server's embedded defaults. Data lives as long as the process.
//
// # Example
//
//	st := memstore.New()
//	svc, err := billing.NewService(st, lognotify.New(nil), billing.Config{})
package memstore
