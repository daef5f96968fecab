package notify_test

import (
	"fmt"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
)

func ExampleRenderer_Render() {
	r, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com", ProductName: "Acme"})
	if err != nil {
		panic(err)
	}
	for _, locale := range []string{"pt_BR", "en-US"} {
		m, err := r.Render(billing.NotificationKindExpiring, locale, notify.SampleData(billing.NotificationKindExpiring, locale))
		if err != nil {
			panic(err)
		}
		fmt.Println(m.Locale, "|", m.Subject)
	}
	// Output:
	// pt-BR | Sua assinatura expira em 3 dias
	// en | Your subscription expires in 3 days
}

func ExampleFormatMoney() {
	fmt.Println(notify.FormatMoney(billing.Money{Amount: 4990, Currency: "BRL"}, "pt-BR"))
	fmt.Println(notify.FormatMoney(billing.Money{Amount: 4990, Currency: "USD"}, "en"))
	// Output:
	// R$ 49,90
	// $49.90
}
