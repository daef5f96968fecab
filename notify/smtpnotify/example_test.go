package smtpnotify_test

import (
	"context"
	"log"
	"os"
	"strconv"

	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/smtpnotify"
)

// ExampleNew configures the SMTP notifier from the environment. New does not connect (the
// first Notify does), but sending needs a server, so go test compiles this example without
// running it.
func ExampleNew() {
	r, err := notify.NewRenderer(notify.Config{FrontendURL: os.Getenv("FRONTEND_URL")})
	if err != nil {
		log.Fatal(err)
	}
	port, _ := strconv.Atoi(os.Getenv("SMTP_PORT"))
	n, err := smtpnotify.New(smtpnotify.Config{
		Host: os.Getenv("SMTP_HOST"), Port: port,
		Username: os.Getenv("SMTP_USER"), Password: os.Getenv("SMTP_PASSWORD"),
		From: os.Getenv("SMTP_FROM"), Renderer: r,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	// billing.NewService(store, n, billing.Config{}) sends through it.
}
