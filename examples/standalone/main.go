// Command standalone runs renewkit as one server: the five jobs on their schedules, the admin
// jobs API and dashboard, the gateway webhooks and the email previews. With no configuration
// it runs on embedded defaults: an in-memory store with demo data, emails logged and written
// as .eml files, the scheduler on, and a random admin token printed once.
//
//	go run ./examples/standalone          # serve on :8000
//	go run ./examples/standalone -once    # run the five jobs once on demo data and print results
//	go run ./examples/standalone -h       # every setting, its variable and default
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	once := false
	var rest []string
	for _, a := range args {
		if a == "-once" || a == "--once" {
			once = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, err := loadConfig(rest, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "standalone: invalid configuration: %v\n", err)
		return 2
	}
	if once {
		return runOnce(ctx, stdout, stderr)
	}
	return serve(ctx, cfg, stdout, stderr)
}
