package mercadopagogw_test

import (
	"github.com/renewkit/renewkit/gateways/mercadopagogw"
	"github.com/renewkit/renewkit/gateways/mercadopagogw/mercadopagogwtest"
)

// The package's own tests build their notifications with mercadopagogwtest, as hosts do,
// through this hook (see NewSignedRequest in helpers_test.go).
func init() { mercadopagogw.NewSignedRequest = mercadopagogwtest.NewRequest }
