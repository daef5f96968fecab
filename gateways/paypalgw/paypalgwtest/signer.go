package paypalgwtest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/renewkit/renewkit/gateways/paypalgw"
)

// Signer signs webhook deliveries the way PayPal does: it holds a test CA, a signing
// certificate issued by it and an HTTPS server on 127.0.0.1 serving that certificate.
// Config returns an offline-verification paypalgw.Config that trusts exactly this setup.
// Close it when done.
type Signer struct {
	// WebhookID signed into every message.
	WebhookID string
	// CertURL is where the signing certificate is served.
	CertURL string
	// Server serves the certificate over TLS.
	Server *httptest.Server
	// RootCAs holds the test CA that issued the signing certificate.
	RootCAs *x509.CertPool

	key      *rsa.PrivateKey
	sans     []string
	requests atomic.Int64
	ids      atomic.Int64
}

// SignerOptions tunes NewSigner; the zero value is a certificate valid from an hour before
// now to a year after.
type SignerOptions struct {
	NotBefore, NotAfter time.Time
	// DNSNames are the signing certificate's subject alternative names; default
	// CertSAN.
	DNSNames []string
}

// CertSAN is the DNS name of a Signer's signing certificate by default; its Config expects
// it in place of PayPal's message-verification host.
const CertSAN = "messageverificationcerts.test.paypal.invalid"

// NewSigner creates the key pair, the certificates and the certificate server.
func NewSigner(webhookID string, opts SignerOptions) (*Signer, error) {
	if opts.NotBefore.IsZero() {
		opts.NotBefore = time.Now().Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "renewkit test PayPal CA"},
		NotBefore: opts.NotBefore.Add(-time.Hour), NotAfter: opts.NotAfter.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if opts.DNSNames == nil {
		opts.DNSNames = []string{CertSAN}
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: opts.DNSNames[0]}, DNSNames: opts.DNSNames,
		NotBefore: opts.NotBefore, NotAfter: opts.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	s := &Signer{WebhookID: webhookID, RootCAs: x509.NewCertPool(), key: key, sans: opts.DNSNames}
	s.RootCAs.AddCert(ca)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(certPEM)
	}))
	s.CertURL = s.Server.URL + "/v1/notifications/certs/CERT-renewkit-test"
	return s, nil
}

// Close stops the certificate server.
func (s *Signer) Close() { s.Server.Close() }

// CertRequests counts the requests the certificate server has seen.
func (s *Signer) CertRequests() int64 { return s.requests.Load() }

// Config returns an offline-verification Config for the signer: its webhook id, its server
// as the only allowed certificate host, its CA as root, its certificate's names as CertSANs
// and an HTTP client trusting the server.
func (s *Signer) Config() paypalgw.Config {
	return paypalgw.Config{
		WebhookID: s.WebhookID, Verification: paypalgw.VerifyOffline, HTTPClient: s.Server.Client(),
		CertHostAllowlist: []string{s.Server.Listener.Addr().String()}, RootCAs: s.RootCAs,
		CertSANs: append([]string(nil), s.sans...),
	}
}

// Sign returns the PAYPAL-* headers of a delivery of body transmitted at t, signed for the
// signer's webhook id and certificate URL.
func (s *Signer) Sign(body []byte, t time.Time) http.Header {
	return s.SignWith(body, t, s.WebhookID, s.CertURL)
}

// Request returns body POSTed to url as PayPal delivers it: Content-Type application/json
// and the PAYPAL-* headers of Sign at t, ready for a handler's ServeHTTP (url may be a path,
// as with httptest.NewRequest).
func (s *Signer) Request(url string, body []byte, t time.Time) *http.Request {
	req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range s.Sign(body, t) {
		req.Header[k] = v
	}
	return req
}

// SignWith signs for another webhook id or certificate URL (to test rejections).
func (s *Signer) SignWith(body []byte, t time.Time, webhookID, certURL string) http.Header {
	id := fmt.Sprintf("%08x-0000-4000-8000-%012d", time.Now().UnixNano()&0xffffffff, s.ids.Add(1))
	sent := t.UTC().Format(time.RFC3339)
	sum := sha256.Sum256(paypalgw.SignedMessage(id, sent, webhookID, body))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err) // a 2048-bit key always signs a SHA-256 digest
	}
	h := http.Header{}
	h.Set(paypalgw.HeaderTransmissionID, id)
	h.Set(paypalgw.HeaderTransmissionTime, sent)
	h.Set(paypalgw.HeaderTransmissionSig, base64.StdEncoding.EncodeToString(sig))
	h.Set(paypalgw.HeaderCertURL, certURL)
	h.Set(paypalgw.HeaderAuthAlgo, paypalgw.AuthAlgo)
	return h
}
