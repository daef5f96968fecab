package stripegw

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/renewkit/renewkit/gateways"
)

// errNoHeader: the request has no Stripe-Signature header.
var errNoHeader = fmt.Errorf("%w: no %s header", gateways.ErrMissingSignature, SignatureHeader)

// signatureHeader is a parsed Stripe-Signature header: "t=1700000000,v1=<hex>,v1=<hex>,v0=...".
type signatureHeader struct {
	Timestamp time.Time
	// Signatures are the decoded v1 signatures; during a secret roll Stripe sends one per
	// active secret.
	Signatures [][]byte
}

// maxSignatureHeader bounds the header we parse (Stripe's is about 150 bytes; a roll adds
// one signature of 64 hex digits per secret).
const maxSignatureHeader = 4096

// parseSignatureHeader parses the Stripe-Signature header. It follows the scheme stripe-go's
// webhook package implements: comma-separated key=value pairs, exactly one t (Unix
// seconds), one or more v1 (hex HMAC-SHA256); other schemes are ignored and v1 values
// that are not hex are skipped. Unlike the SDK it rejects a missing or repeated t, since
// the tolerance check needs exactly one timestamp.
func parseSignatureHeader(h string) (signatureHeader, error) {
	var sh signatureHeader
	if h == "" {
		return sh, errNoHeader
	}
	if len(h) > maxSignatureHeader {
		return sh, fmt.Errorf("%w: longer than %d bytes", gateways.ErrMalformedSignature, maxSignatureHeader)
	}
	haveT := false
	for _, pair := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "=") {
			return sh, fmt.Errorf("%w: element is not key=value", gateways.ErrMalformedSignature)
		}
		switch k {
		case "t":
			if haveT {
				return sh, fmt.Errorf("%w: more than one timestamp", gateways.ErrMalformedSignature)
			}
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil || sec <= 0 || sec > maxUnixSeconds {
				return sh, fmt.Errorf("%w: timestamp is not Unix seconds", gateways.ErrMalformedSignature)
			}
			sh.Timestamp, haveT = time.Unix(sec, 0).UTC(), true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) == 0 {
				continue // as the SDK: ignore a signature that is not hex
			}
			sh.Signatures = append(sh.Signatures, sig)
		}
	}
	if !haveT {
		return sh, fmt.Errorf("%w: no timestamp", gateways.ErrMalformedSignature)
	}
	if len(sh.Signatures) == 0 {
		return sh, fmt.Errorf("%w: no v1 signature", gateways.ErrMalformedSignature)
	}
	return sh, nil
}

// maxUnixSeconds keeps timestamps in a range where time arithmetic cannot overflow
// (year 9999).
const maxUnixSeconds = 253402300799

// verifySignature checks the Stripe-Signature header of payload against secret at now.
//
// The timestamp is checked here against the injected clock (|now - t| <= tolerance), then
// the HMAC is checked by stripe-go's webhook.ValidatePayloadIgnoringTolerance: the SDK's own
// tolerance check calls time.Since and cannot follow an injected clock, so it is disabled
// and replaced by this one, which also rejects timestamps too far in the future.
func verifySignature(payload []byte, header, secret string, now time.Time, tolerance time.Duration) error {
	sh, err := parseSignatureHeader(header)
	if err != nil {
		return err
	}
	if d := now.Sub(sh.Timestamp); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %v from now, tolerance %v", gateways.ErrStaleSignature, d.Round(time.Second), tolerance)
	}
	if err := webhook.ValidatePayloadIgnoringTolerance(payload, header, secret); err != nil {
		switch err {
		case webhook.ErrNotSigned:
			return errNoHeader
		case webhook.ErrInvalidHeader:
			return fmt.Errorf("%w: rejected by stripe-go", gateways.ErrMalformedSignature)
		default:
			return gateways.ErrSignatureMismatch
		}
	}
	return nil
}

// SignPayload returns a Stripe-Signature header for payload signed with secret at t, as
// Stripe sends it ("t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<payload>">"). It uses
// stripe-go's webhook.GenerateTestSignedPayload. For hosts' tests and benchmarks.
func SignPayload(secret string, payload []byte, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: payload, Secret: secret, Timestamp: t, Scheme: "v1",
	}).Header
}
