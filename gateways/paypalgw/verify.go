package paypalgw

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plutov/paypal/v4"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
)

// The transmission headers PayPal sends with every delivery.
const (
	HeaderTransmissionID   = "Paypal-Transmission-Id"
	HeaderTransmissionTime = "Paypal-Transmission-Time"
	HeaderTransmissionSig  = "Paypal-Transmission-Sig"
	HeaderCertURL          = "Paypal-Cert-Url"
	HeaderAuthAlgo         = "Paypal-Auth-Algo"
)

// AuthAlgo is the only signature algorithm accepted.
const AuthAlgo = "SHA256withRSA"

// transmission is the parsed set of transmission headers.
type transmission struct {
	ID       string
	TimeRaw  string // exactly as sent: it is part of the signed message
	Time     time.Time
	Sig      []byte
	SigRaw   string
	CertURL  *url.URL
	AuthAlgo string
}

// parseTransmission reads and checks the syntax of the transmission headers (lengths follow
// PayPal's verify-webhook-signature request schema, with room for 4096-bit signatures).
func parseTransmission(h http.Header) (transmission, error) {
	var tr transmission
	get := func(name string, max int) (string, error) {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return "", sigErr(gateways.ErrMissingSignature, "%s", name)
		}
		if len(v) > max {
			return "", sigErr(gateways.ErrMalformedSignature, "%s longer than %d bytes", name, max)
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f || c == '|' {
				return "", sigErr(gateways.ErrMalformedSignature, "%s has a character outside printable ASCII or '|'", name)
			}
		}
		return v, nil
	}
	var err error
	if tr.ID, err = get(HeaderTransmissionID, 100); err != nil {
		return tr, err
	}
	if tr.TimeRaw, err = get(HeaderTransmissionTime, 100); err != nil {
		return tr, err
	}
	if tr.SigRaw, err = get(HeaderTransmissionSig, 1024); err != nil {
		return tr, err
	}
	rawURL, err := get(HeaderCertURL, 500)
	if err != nil {
		return tr, err
	}
	if tr.AuthAlgo, err = get(HeaderAuthAlgo, 100); err != nil {
		return tr, err
	}
	if tr.Time, err = time.Parse(time.RFC3339Nano, tr.TimeRaw); err != nil {
		return tr, sigErr(gateways.ErrMalformedSignature, "%s is not an RFC 3339 time", HeaderTransmissionTime)
	}
	if tr.Sig, err = base64.StdEncoding.DecodeString(tr.SigRaw); err != nil || len(tr.Sig) == 0 {
		return tr, sigErr(gateways.ErrMalformedSignature, "%s is not base64", HeaderTransmissionSig)
	}
	if tr.CertURL, err = url.Parse(rawURL); err != nil {
		return tr, sigErr(ErrCertURL, "%s does not parse", HeaderCertURL)
	}
	if !strings.EqualFold(tr.AuthAlgo, AuthAlgo) {
		return tr, sigErr(ErrUnsupportedAlgorithm, "%q", tr.AuthAlgo)
	}
	return tr, nil
}

// checkFresh rejects a transmission time further than tol from now.
func checkFresh(tr transmission, now time.Time, tol time.Duration) error {
	if d := now.Sub(tr.Time); d > tol || d < -tol {
		return sigErr(gateways.ErrStaleSignature, "transmitted %s, clock %s, tolerance %v", tr.Time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), tol)
	}
	return nil
}

// checkCertURL accepts only https URLs on an allowlisted host:port, without credentials.
func checkCertURL(u *url.URL, allow map[string]bool) error {
	if u == nil || u.Scheme != "https" {
		return sigErr(ErrCertURL, "certificate URL must use https")
	}
	if u.User != nil || u.Host == "" || u.Opaque != "" {
		return sigErr(ErrCertURL, "certificate URL must be https://host/path")
	}
	host := strings.ToLower(u.Host)
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	if !allow[host] {
		return sigErr(ErrCertURL, "host %q is not in CertHostAllowlist", u.Host)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return sigErr(ErrCertURL, "certificate URL must not have a query or fragment")
	}
	name, ok := strings.CutPrefix(u.EscapedPath(), CertPathPrefix)
	if !ok || !validCertName(name) {
		return sigErr(ErrCertURL, "certificate URL path must be %s<name>", CertPathPrefix)
	}
	return nil
}

// CertPathPrefix is the path PayPal serves webhook signing certificates under
// (https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-...); a
// PAYPAL-CERT-URL must be this prefix followed by one name.
const CertPathPrefix = "/v1/notifications/certs/"

// validCertName accepts one path segment of letters, digits, '-' and '_' (PayPal's CERT-...
// names): no '/', no dots, no escapes.
func validCertName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkSAN requires the leaf to carry one of names as a DNS subject alternative name.
func checkSAN(leaf *x509.Certificate, names []string) error {
	for _, n := range names {
		if leaf.VerifyHostname(n) == nil {
			return nil
		}
	}
	return sigErr(ErrCertificate, "signing certificate is not issued for %s", strings.Join(names, " or "))
}

// SignedMessage returns the bytes PayPal signs for a delivery of body: the transmission id,
// the transmission time exactly as sent, the webhook id and the CRC32 (IEEE) of the raw body
// in decimal, joined by '|'. The signature is RSA PKCS#1 v1.5 over its SHA-256 digest.
func SignedMessage(transmissionID, transmissionTime, webhookID string, body []byte) []byte {
	return []byte(transmissionID + "|" + transmissionTime + "|" + webhookID + "|" + strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
}

// checkSignature verifies the RSA PKCS#1 v1.5 SHA-256 signature with the leaf's key.
func checkSignature(leaf *x509.Certificate, tr transmission, webhookID string, body []byte) error {
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return sigErr(ErrCertificate, "certificate key is not RSA")
	}
	sum := sha256.Sum256(SignedMessage(tr.ID, tr.TimeRaw, webhookID, body))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], tr.Sig); err != nil {
		return sigErr(gateways.ErrSignatureMismatch, "signature does not match body, transmission and webhook id")
	}
	return nil
}

// verifier proves a delivery comes from PayPal.
type verifier interface {
	verify(ctx context.Context, tr transmission, h http.Header, body []byte) error
}

// offlineVerifier checks signatures locally.
type offlineVerifier struct {
	webhookID string
	allow     map[string]bool
	sans      []string
	roots     *x509.CertPool
	cache     *certCache
	now       func() time.Time
}

func (v *offlineVerifier) verify(ctx context.Context, tr transmission, _ http.Header, body []byte) error {
	if err := checkCertURL(tr.CertURL, v.allow); err != nil {
		return err
	}
	chain, err := v.cache.get(ctx, tr.CertURL.String())
	if err != nil {
		return err
	}
	now := v.now()
	if _, err := chain.leaf.Verify(x509.VerifyOptions{
		Roots: v.roots, Intermediates: chain.intermediates, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return sigErr(ErrCertificate, "%v", err)
	}
	if err := checkSAN(chain.leaf, v.sans); err != nil {
		return err
	}
	return checkSignature(chain.leaf, tr, v.webhookID, body)
}

// onlineVerifier asks PayPal's verify-webhook-signature API.
type onlineVerifier struct {
	webhookID string
	allow     map[string]bool
	client    *paypal.Client
}

func (v *onlineVerifier) verify(ctx context.Context, tr transmission, h http.Header, body []byte) error {
	if err := checkCertURL(tr.CertURL, v.allow); err != nil {
		return err
	}
	// The API takes the event as a JSON object; a body that is not JSON cannot be verified.
	if !json.Valid(body) {
		return sigErr(gateways.ErrSignatureMismatch, "body is not JSON")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, k := range []string{HeaderTransmissionID, HeaderTransmissionTime, HeaderTransmissionSig, HeaderCertURL, HeaderAuthAlgo} {
		req.Header.Set(k, h.Get(k))
	}
	resp, err := v.client.VerifyWebhookSignature(ctx, req, v.webhookID)
	if err != nil {
		aerr := apiError("verify webhook signature", err)
		if !aerr.Retryable && aerr.StatusCode >= 400 && aerr.StatusCode < 500 && aerr.StatusCode != 401 && aerr.StatusCode != 403 {
			// PayPal rejected the request itself (malformed transmission data).
			return fmt.Errorf("%w: %w", sigErr(gateways.ErrSignatureMismatch, "PayPal refused the verification"), aerr)
		}
		return aerr
	}
	if resp.VerificationStatus != "SUCCESS" {
		return sigErr(gateways.ErrSignatureMismatch, "PayPal answered verification_status %q", resp.VerificationStatus)
	}
	return nil
}

// apiError classifies an SDK error.
func apiError(op string, err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	out := &APIError{Gateway: billing.GatewayPayPal, Op: op, Err: err, Retryable: true}
	var er *paypal.ErrorResponse
	if errors.As(err, &er) {
		out.Code, out.RequestID = er.Name, er.DebugID
		if er.Response != nil {
			out.StatusCode = er.Response.StatusCode
		}
		out.Retryable = gateways.RetryableStatus(out.StatusCode)
		// ErrorResponse.Error dereferences the request; keep only the safe parts.
		out.Err = errors.New(er.Message)
	}
	return out
}
