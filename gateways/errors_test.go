package gateways_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/gateways"
)

// An APIError never prints the text of a gateway's answer, which can echo what was sent
// (a key), but still prints why no answer arrived; the answer's error stays reachable.
func TestAPIErrorPrintsNoAnswerText(t *testing.T) {
	sdk := errors.New("Invalid API Key provided: sk_live_Zq123secret")
	answered := &gateways.APIError{Gateway: "stripe", Op: "retrieve subscription", ID: "sub_1", StatusCode: 401, Err: sdk}
	if s := answered.Error(); strings.Contains(s, "sk_live_Zq123secret") || !strings.Contains(s, "HTTP 401") {
		t.Fatalf("answered error %q: want the status and no text of the answer", s)
	}
	if !errors.Is(answered, sdk) || !errors.Is(answered, gateways.ErrRejected) {
		t.Fatal("the SDK error and ErrRejected must stay reachable")
	}
	refused := &gateways.APIError{Gateway: "stripe", Op: "retrieve subscription", Retryable: true, Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}
	if s := refused.Error(); !strings.Contains(s, "connection refused") || !errors.Is(refused, gateways.ErrUnavailable) {
		t.Fatalf("unanswered error %q: want why no answer arrived", s)
	}
}
