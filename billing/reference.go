package billing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Reference is what a checkout or gateway subscription is for: the user who buys, the plan
// bought and, optionally, the renewkit payment the host created before redirecting the buyer.
// The host signs it with SignReference (or Service.SignReference) and passes the result to the
// gateway (Stripe client_reference_id or metadata, PayPal custom_id, Mercado Pago
// external_reference or metadata); the webhook handlers verify it before anything is created
// or granted. A buyer who edits it, or writes "user:plan" by hand, is refused.
type Reference struct {
	UserID    string
	PlanID    string
	PaymentID string
}

// Reference format, version 1:
//
//	"rk1" + base64url(user_id NUL plan_id NUL payment_id) + base64url(HMAC-SHA256(secret,
//	"renewkit-reference-v1" NUL payload)[:16])
//
// base64url without padding uses letters, digits, '-' and '_', so the reference is safe in
// Stripe's client_reference_id (alphanumerics, '-', '_'), PayPal's custom_id and Mercado
// Pago's external_reference. The tag is the last 22 characters.
const (
	referencePrefix = "rk1"
	referenceDomain = "renewkit-reference-v1\x00"
	referenceTagLen = 22 // base64url of 16 bytes
)

// MaxReferenceLength is the longest reference SignReference produces: PayPal's custom_id
// limit, the smallest of the gateways'. With 24-character user and payment ids it leaves
// 26 bytes for the plan id.
const MaxReferenceLength = 127

// MinReferenceSecret is the shortest secret SignReference and VerifyReference accept.
const MinReferenceSecret = 16

var refEncoding = base64.RawURLEncoding

// SignReference returns the reference for ref signed with secret (HMAC-SHA256). The user and
// plan ids are required; none of the ids may contain a NUL byte. The error wraps
// ErrInvalidInput when the ids are missing or too long for MaxReferenceLength, or when the
// secret is shorter than MinReferenceSecret.
func SignReference(secret []byte, ref Reference) (string, error) {
	if len(secret) < MinReferenceSecret {
		return "", fmt.Errorf("%w: reference secret is shorter than %d bytes: set billing.Config.ReferenceSecret (RENEWKIT_REFERENCE_SECRET in the standalone server)", ErrInvalidInput, MinReferenceSecret)
	}
	if ref.UserID == "" || ref.PlanID == "" {
		return "", fmt.Errorf("%w: a reference needs a user id and a plan id", ErrInvalidInput)
	}
	if strings.ContainsRune(ref.UserID+ref.PlanID+ref.PaymentID, 0) {
		return "", fmt.Errorf("%w: reference ids contain a NUL byte", ErrInvalidInput)
	}
	payload := refEncoding.EncodeToString([]byte(ref.UserID + "\x00" + ref.PlanID + "\x00" + ref.PaymentID))
	s := referencePrefix + payload + referenceTag(secret, payload)
	if len(s) > MaxReferenceLength {
		return "", fmt.Errorf("%w: user, plan and payment ids are too long for a %d-character reference (%d)", ErrInvalidInput, MaxReferenceLength, len(s))
	}
	return s, nil
}

// VerifyReference checks a reference made by SignReference with the same secret and returns
// what it names. The tag is compared in constant time. Anything else (an unsigned
// "user:plan", an edited or truncated reference, one signed with another secret, no secret)
// is an error wrapping ErrBadReference that never echoes the secret or the tag.
func VerifyReference(secret []byte, s string) (Reference, error) {
	if len(secret) < MinReferenceSecret {
		return Reference{}, fmt.Errorf("%w: no reference secret configured (billing.Config.ReferenceSecret)", ErrBadReference)
	}
	if !strings.HasPrefix(s, referencePrefix) || len(s) > MaxReferenceLength || len(s) < len(referencePrefix)+referenceTagLen+1 {
		return Reference{}, fmt.Errorf("%w: not a renewkit reference", ErrBadReference)
	}
	body := s[len(referencePrefix):]
	payload, tag := body[:len(body)-referenceTagLen], body[len(body)-referenceTagLen:]
	if !hmac.Equal([]byte(tag), []byte(referenceTag(secret, payload))) {
		return Reference{}, fmt.Errorf("%w: signature does not match", ErrBadReference)
	}
	raw, err := refEncoding.DecodeString(payload)
	if err != nil {
		return Reference{}, fmt.Errorf("%w: malformed payload", ErrBadReference)
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return Reference{}, fmt.Errorf("%w: malformed payload", ErrBadReference)
	}
	return Reference{UserID: parts[0], PlanID: parts[1], PaymentID: parts[2]}, nil
}

func referenceTag(secret []byte, payload string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(referenceDomain))
	m.Write([]byte(payload))
	return refEncoding.EncodeToString(m.Sum(nil)[:16])
}

// SignReference signs ref with Config.ReferenceSecret; see the package function.
func (s *Service) SignReference(ref Reference) (string, error) {
	return SignReference(s.cfg.ReferenceSecret, ref)
}

// VerifyReference verifies a reference with Config.ReferenceSecret; see the package
// function. Gateways call it for every reference a webhook carries.
func (s *Service) VerifyReference(ref string) (Reference, error) {
	return VerifyReference(s.cfg.ReferenceSecret, ref)
}
