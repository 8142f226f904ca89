// Command gateway is a framecast WebSocket gateway replica.
//
// Usage:
//
//	gateway               serve (settings from GATEWAY_* environment variables)
//	gateway healthcheck   exit 0 if the local gateway's /healthz answers (for images without curl)
//	gateway token -room R -role publish|view|* [-ttl 24h] [-out FILE]
//	                      print (or write to FILE) an access token signed with GATEWAY_JWT_SECRET (or -secret-file, -key-file)
//	gateway recordings rebuild -room R | -all [-store DIR]
//	                      regenerate the recording index of a room (or of every room) from its segments
//	gateway -h            list every setting with its default
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/fdlimit"
	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/gctune"
	"github.com/framecast/framecast/internal/recording/index"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			return healthcheck(args[1:])
		case "token":
			return token(args[1:])
		case "recordings":
			return recordings(args[1:])
		}
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gateway [healthcheck | token -room R -role ROLE]\n\nframecast WebSocket gateway. Settings come from the environment:\n\n")
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
	if os.Getenv("GOGC") == "" {
		// The heap is mostly long-lived per-connection state, and frames
		// are few large noscan buffers: collecting at 50% growth instead
		// of 100% trims idle memory per viewer by about a fifth (measured:
		// 22.7 -> 18.2 KB). But a small heap relaying many frames would
		// then collect every few frames (over 100 times a second at 800
		// frames/s): below GC_FLOOR_MB the collector waits for the floor.
		// GOGC overrides both. See docs/performance-log.md.
		if cfg.GCFloorMB > 0 {
			defer gctune.Start(50, uint64(cfg.GCFloorMB)<<20).Stop()
		} else {
			debug.SetGCPercent(50)
		}
	}
	log := cfg.NewLogger(os.Stderr)
	reportOpenFiles(log, cfg.MaxConnections)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := gateway.Run(ctx, cfg, log); err != nil {
		log.Error("gateway failed", "err", err)
		return 1
	}
	return 0
}

// fdReserve is the open files a gateway needs besides its connections:
// the listener, Redis connections, the Go runtime's own, a margin for
// connections being accepted or closed.
const fdReserve = 64

// reportOpenFiles raises the open-file limit to its hard maximum and logs
// it; it warns when the limit is too low for GATEWAY_MAX_CONNECTIONS, where
// accept would fail ("too many open files") before the limit answers 429.
func reportOpenFiles(log *slog.Logger, maxConns int) {
	lim, err := fdlimit.Raise()
	if err != nil {
		log.Warn("open-file limit not raised", "err", err, "soft", lim.Soft, "hard", lim.Hard)
	} else {
		log.Info("open-file limit", "soft", lim.Soft, "hard", lim.Hard)
	}
	if lim.Soft > 0 && maxConns > 0 && lim.Soft < uint64(maxConns)+fdReserve {
		log.Warn("open-file limit is below GATEWAY_MAX_CONNECTIONS plus a reserve: clients will stall on accept before the connection limit answers 429; raise the hard limit (LimitNOFILE=, ulimit -Hn, --ulimit nofile=) or lower GATEWAY_MAX_CONNECTIONS",
			"open_files", lim.Soft, "max_connections", maxConns, "reserve", fdReserve)
	}
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

// token mints an access token for operators (see internal/auth and
// docs/security.md) and prints it on stdout, or writes it to -out.
func token(args []string) int {
	fs := flag.NewFlagSet("gateway token", flag.ContinueOnError)
	room := fs.String("room", "", "room name, or pattern such as cam_* or * (required)")
	role := fs.String("role", "", `"publish" (publish and watch), "view" or "*" (required)`)
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	sub := fs.String("sub", "", "optional subject, e.g. the camera's name, logged when its token expires")
	secretFile := fs.String("secret-file", "", "file holding the HS256 secret (default: $GATEWAY_JWT_SECRET)")
	keyFile := fs.String("key-file", "", "PEM private key for RS256/ES256 tokens, instead of a secret")
	out := fs.String("out", "", "write the token to this file (mode 0644, replaced atomically) instead of stdout; its directory must exist")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *room == "" || *role == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "gateway token: -room and -role are required")
		fs.Usage()
		return 2
	}
	signer, err := auth.LoadSigner(os.Getenv("GATEWAY_JWT_SECRET"), *secretFile, *keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway token: %v\n", err)
		return 2
	}
	tok, err := signer.Mint(auth.Grant{Room: *room, Role: *role, TTL: *ttl, Subject: *sub}, time.Now())
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway token: %v\n", err)
		return 2
	}
	if *out == "" {
		fmt.Println(tok)
		return 0
	}
	if err := writeTokenFile(*out, tok); err != nil {
		fmt.Fprintf(os.Stderr, "gateway token: %v\n", err)
		return 1
	}
	return 0
}

// recordings runs the maintenance commands of recordings: `rebuild`
// regenerates rooms' index logs from their segments (index.Rebuild), for
// a store whose logs were lost or damaged. It may run while recorders
// record.
func recordings(args []string) int {
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprintln(os.Stderr, "usage: gateway recordings rebuild -room R | -all [-store DIR]")
		return 2
	}
	fs := flag.NewFlagSet("gateway recordings rebuild", flag.ContinueOnError)
	room := fs.String("room", "", "the room whose index to rebuild")
	all := fs.Bool("all", false, "rebuild every room found in the store")
	dir := fs.String("store", os.Getenv("GATEWAY_RECORD_STORE"), "the recordings' store: a directory or s3://bucket/prefix with the GATEWAY_S3_* and Redis settings (default: $GATEWAY_RECORD_STORE)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if (*room == "") == !*all || *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "gateway recordings rebuild: give -room R or -all, and -store (or GATEWAY_RECORD_STORE)")
		fs.Usage()
		return 2
	}
	// The store is opened as a gateway opens it, from the GATEWAY_*
	// settings (an S3 store needs its endpoint and Redis for its journals).
	os.Setenv("GATEWAY_RECORD_STORE", *dir)
	cfg, err := gateway.LoadConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway recordings rebuild: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, closeStore, err := gateway.OpenRecordStore(ctx, cfg, cfg.NewLogger(os.Stderr))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway recordings rebuild: %v\n", err)
		return 1
	}
	defer closeStore()
	list := []string{*room}
	if *all {
		if list, err = index.Rooms(ctx, st); err != nil {
			fmt.Fprintf(os.Stderr, "gateway recordings rebuild: %v\n", err)
			return 1
		}
	}
	code := 0
	for _, r := range list {
		stats, err := index.Rebuild(ctx, st, r)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gateway recordings rebuild: room %s: %v\n", r, err)
			code = 1
			continue
		}
		fmt.Printf("%s: %d segments, %d open, %d skipped, %d day logs written, %d removed\n",
			r, stats.Segments, stats.Open, stats.Skipped, stats.Days, stats.Removed)
	}
	return code
}

// writeTokenFile writes tok and a newline to name with mode 0644, through a
// temporary file in the same directory renamed over name: a reader (a sender
// re-reading its token file before a reconnect) sees the old token or the
// new one, never a partial file.
func writeTokenFile(name, tok string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to write token: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("failed to write token to %s: %w", name, err)
		}
	}()
	if _, err = f.WriteString(tok + "\n"); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
