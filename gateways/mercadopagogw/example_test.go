package mercadopagogw_test

import (
	"fmt"
	"time"

	"github.com/renewkit/renewkit/gateways/mercadopagogw"
)

// Sign a notification the way Mercado Pago does, for a host's own webhook tests.
func ExampleSignRequest() {
	ts := time.UnixMilli(1742505638683)
	fmt.Println(mercadopagogw.Manifest("1312345678", "req-1", "1742505638683"))
	fmt.Println(mercadopagogw.SignRequest("secret", "1312345678", "req-1", ts)[:17])
	// Output:
	// id:1312345678;request-id:req-1;ts:1742505638683;
	// ts=1742505638683,
}
