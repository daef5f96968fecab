package gateways_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/gateways"
)

// An APIError says what failed: the call, the status and why no answer arrived, and the
// underlying error stays reachable.
func TestAPIErrorText(t *testing.T) {
	refused := &gateways.APIError{Gateway: "stripe", Op: "retrieve subscription", Retryable: true, Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}
	if s := refused.Error(); !strings.Contains(s, "connection refused") || !errors.Is(refused, gateways.ErrUnavailable) {
		t.Fatalf("unanswered error %q: want why no answer arrived", s)
	}
}
