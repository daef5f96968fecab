package pgstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/renewkit/renewkit/store/pgstore"
)

// TestRetryBounded proves a serialization failure or deadlock is retried at most
// MaxRetries times, a success ends the retries, and other errors are not retried.
func TestRetryBounded(t *testing.T) {
	s, err := pgstore.New(pool(t), pgstore.Config{MaxRetries: 3, RetryBackoff: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code      string
		okAfter   int // the attempt that succeeds; 0: never
		wantCalls int
		wantErr   bool
	}{
		{"40001", 0, 4, true},
		{"40P01", 0, 4, true},
		{"40001", 2, 2, false},
		{"23505", 0, 1, true},
	} {
		calls := 0
		err := s.Retry(context.Background(), func() error {
			calls++
			if tc.okAfter > 0 && calls == tc.okAfter {
				return nil
			}
			return &pgconn.PgError{Code: tc.code}
		})
		var pe *pgconn.PgError
		if calls != tc.wantCalls || (err != nil) != tc.wantErr || (err != nil && !errors.As(err, &pe)) {
			t.Errorf("code %s, ok after %d: %d calls, err %v; want %d calls, error %v", tc.code, tc.okAfter, calls, err, tc.wantCalls, tc.wantErr)
		}
	}
}
