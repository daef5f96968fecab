package smtpnotify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
)

// selfSigned returns a server config with a certificate for 127.0.0.1 and a client
// config trusting it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return server, client
}

func TestSTARTTLSMandatoryWithAuth(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	s := startServer(t, withTLS(srvTLS), withAuth("apikey", "pw"))
	cfg := testConfig(t, s)
	cfg.TLSPolicy, cfg.TLSConfig = TLSMandatory, cliTLS
	cfg.Username, cfg.Password = "apikey", "pw"
	n := newNotifier(t, cfg)
	require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "en")))
	assert.Len(t, s.Messages(), 1)
	assert.EqualValues(t, 1, s.authOK.Load())
}

func TestSTARTTLSMandatoryRefusesPlainServer(t *testing.T) {
	s := startServer(t) // no STARTTLS offered
	cfg := testConfig(t, s)
	cfg.TLSPolicy, cfg.MaxAttempts = TLSMandatory, 1
	n := newNotifier(t, cfg)
	err := n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "en"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STARTTLS")
	assert.NotErrorIs(t, err, billing.ErrUndeliverable)
	assert.Empty(t, s.Messages())

	cfg.TLSPolicy = TLSOpportunistic
	n = newNotifier(t, cfg)
	require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindWelcome, "en")))
}

func TestImplicitTLS(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	s := startServer(t, withImplicitTLS(srvTLS), withAuth("apikey", "pw"))
	cfg := testConfig(t, s)
	cfg.TLSPolicy, cfg.TLSConfig = TLSImplicit, cliTLS
	cfg.Username, cfg.Password = "apikey", "pw"
	n := newNotifier(t, cfg)
	for range 3 {
		require.NoError(t, n.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindRenewed, "pt-BR")))
	}
	assert.Len(t, s.Messages(), 3)
	assert.EqualValues(t, 1, n.Stats().Dials)
}
