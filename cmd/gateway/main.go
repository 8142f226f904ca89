// Command gateway is a framecast WebSocket gateway replica.
//
// Usage:
//
//	gateway               serve (settings from GATEWAY_* environment variables)
//	gateway healthcheck   exit 0 if the local gateway's /healthz answers (for images without curl)
//	gateway -h            list every setting with its default
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/framecast/framecast/internal/gateway"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			return healthcheck(args[1:])
		}
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gateway [healthcheck]\n\nframecast WebSocket gateway. Settings come from the environment:\n\n")
		gateway.PrintUsage(fs.Output())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gateway: unknown command %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	cfg, err := gateway.LoadConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway: %v\n", err)
		return 2
	}
	log := cfg.NewLogger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := gateway.Run(ctx, cfg, log); err != nil {
		log.Error("gateway failed", "err", err)
		return 1
	}
	return 0
}

// healthcheck probes the local gateway at GATEWAY_ADDR (or -addr).
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("gateway healthcheck", flag.ContinueOnError)
	addr := fs.String("addr", envOr("GATEWAY_ADDR", ":8000"), "address of the gateway to probe")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := gateway.Healthcheck(context.Background(), *addr, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "unhealthy: %v\n", err)
		return 1
	}
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
