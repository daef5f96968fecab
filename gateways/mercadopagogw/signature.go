package mercadopagogw

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/renewkit/renewkit/gateways"
)

// Header names Mercado Pago signs with.
const (
	HeaderSignature = "X-signature"
	HeaderRequestID = "X-Request-Id"
)

// signature is a parsed x-signature header.
type signature struct {
	// TS is the ts value as sent (it goes into the manifest verbatim).
	TS string
	// V1 holds the hex HMAC-SHA256 values (normally one).
	V1 []string
}

// Time returns ts as a time. Mercado Pago sends milliseconds since the epoch; values below
// 10^11 are read as seconds (the format in older documentation).
func (s signature) Time() (time.Time, error) {
	n, err := strconv.ParseInt(s.TS, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%w: ts is not a non-negative integer", gateways.ErrMalformedSignature)
	}
	if n < 1e11 {
		return time.Unix(n, 0), nil
	}
	return time.UnixMilli(n), nil
}

const maxSignatureHeader = 1024

// parseSignature parses "ts=<ts>,v1=<hex>". Parts are separated by commas, keys and values
// by the first '=', spaces around them are ignored, unknown keys are skipped, and several v1
// values are all kept. ts must be an integer and every v1 64 hex digits.
func parseSignature(header string) (signature, error) {
	var sig signature
	if strings.TrimSpace(header) == "" {
		return sig, fmt.Errorf("%w: no %s header", gateways.ErrMissingSignature, HeaderSignature)
	}
	if len(header) > maxSignatureHeader {
		return sig, fmt.Errorf("%w: header too long", gateways.ErrMalformedSignature)
	}
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch k {
		case "ts":
			if sig.TS != "" {
				return signature{}, fmt.Errorf("%w: ts appears twice", gateways.ErrMalformedSignature)
			}
			sig.TS = v
		case "v1":
			if len(v) != sha256.Size*2 {
				return signature{}, fmt.Errorf("%w: v1 is not a hex SHA-256", gateways.ErrMalformedSignature)
			}
			if _, err := hex.DecodeString(v); err != nil {
				return signature{}, fmt.Errorf("%w: v1 is not a hex SHA-256", gateways.ErrMalformedSignature)
			}
			sig.V1 = append(sig.V1, strings.ToLower(v))
		}
	}
	if sig.TS == "" || len(sig.V1) == 0 {
		return signature{}, fmt.Errorf("%w: ts and v1 are required", gateways.ErrMalformedSignature)
	}
	if _, err := sig.Time(); err != nil {
		return signature{}, err
	}
	return sig, nil
}

// Manifest is the string Mercado Pago signs: "id:<data.id>;request-id:<x-request-id>;ts:<ts>;".
// As documented, a part whose value is absent from the notification is left out.
func Manifest(dataID, requestID, ts string) string {
	var b strings.Builder
	if dataID != "" {
		b.WriteString("id:" + dataID + ";")
	}
	if requestID != "" {
		b.WriteString("request-id:" + requestID + ";")
	}
	if ts != "" {
		b.WriteString("ts:" + ts + ";")
	}
	return b.String()
}

func sign(secret, manifest string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(manifest))
	return m.Sum(nil)
}

// verifySignature checks sig against the manifest built from dataID and requestID. The docs
// ask for an alphanumeric data.id in lower case while the SDKs sign it as received, so both
// forms are accepted. Comparisons are constant-time.
func verifySignature(secret string, sig signature, dataID, requestID string) error {
	candidates := [][]byte{sign(secret, Manifest(dataID, requestID, sig.TS))}
	if lower := strings.ToLower(dataID); lower != dataID {
		candidates = append(candidates, sign(secret, Manifest(lower, requestID, sig.TS)))
	}
	ok := false
	for _, v := range sig.V1 {
		got, err := hex.DecodeString(v)
		if err != nil {
			continue
		}
		for _, want := range candidates {
			if hmac.Equal(got, want) {
				ok = true
			}
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s", gateways.ErrSignatureMismatch, HeaderSignature)
	}
	return nil
}

// checkTolerance rejects a ts further than tolerance from now (DefaultTolerance when
// tolerance is not positive).
func checkTolerance(sig signature, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	t, err := sig.Time()
	if err != nil {
		return err
	}
	if d := now.Sub(t); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s ts", gateways.ErrStaleSignature, HeaderSignature)
	}
	return nil
}

// SignRequest returns the x-signature header value Mercado Pago would send for a
// notification about dataID with the x-request-id requestID at ts (in milliseconds, as
// Mercado Pago sends it). mercadopagogwtest.NewRequest builds whole signed requests with it.
func SignRequest(secret, dataID, requestID string, ts time.Time) string {
	t := strconv.FormatInt(ts.UnixMilli(), 10)
	return "ts=" + t + ",v1=" + hex.EncodeToString(sign(secret, Manifest(dataID, requestID, t)))
}
