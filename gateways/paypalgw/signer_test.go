package paypalgw_test

import (
	"github.com/renewkit/renewkit/gateways/paypalgw"
	"github.com/renewkit/renewkit/gateways/paypalgw/paypalgwtest"
)

// The package's own tests sign with paypalgwtest, the signer hosts use, through this hook
// (see TestSigner in helpers_test.go).
func init() {
	paypalgw.NewTestSigner = func(webhookID string, opts paypalgw.TestSignerOptions) (*paypalgw.TestSigner, error) {
		s, err := paypalgwtest.NewSigner(webhookID, paypalgwtest.SignerOptions(opts))
		if err != nil {
			return nil, err
		}
		return &paypalgw.TestSigner{TestSigning: s, CertURL: s.CertURL, ServerURL: s.Server.URL}, nil
	}
}
