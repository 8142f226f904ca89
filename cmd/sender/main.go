// Command sender captures a camera, a video file, a stream or a test
// pattern, encodes JPEG frames and publishes them to a framecast gateway
// room over a WebSocket, reconnecting forever. It replaces the seed's
// send_video.py. Settings come from SENDER_* environment variables and
// flags (sender -h); see internal/sender.
//
// Exit status: 0 after SIGTERM or SIGINT, 2 when a setting or the source
// is bad at start, 1 when the pipeline fails to stop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/framecast/framecast/internal/sender"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := sender.LoadConfig(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sender: %v\n", err)
		return 2
	}
	level, _ := cfg.SlogLevel() // validated by LoadConfig
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	s, err := sender.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "sender: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		log.Error("sender failed", "err", err)
		return 1
	}
	log.Info("sender stopped")
	return 0
}
