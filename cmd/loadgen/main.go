// Command loadgen drives framecast gateways with publishers and viewers and
// reports delivery, latency and throughput; see package internal/loadgen.
//
// Examples:
//
//	loadgen -gateways ws://127.0.0.1:8001,ws://127.0.0.1:8002 -viewers 100 -fps 30 -size 50000
//	loadgen -gateways ws://127.0.0.1:8001 -viewers 100 -fps 0 -ceiling -json
//	loadgen -gateways ws://127.0.0.1:8001 -idle 10000 -watch-pids 1234
//	loadgen -gateways ws://127.0.0.1:8001,ws://127.0.0.1:8002 -viewers 100 -h264 clip.h264 -group 'h264=100:v=2&codec=h264'
//	loadgen -gateways ws://127.0.0.1:8001,ws://127.0.0.1:8002 -viewers 0 -h264 clip.h264 -late-joins 20 -redis 127.0.0.1:6379 -duration 2m
//	loadgen -gateways ws://127.0.0.1:8001 -viewers 2 -h264 clip.h264 -room cam -seeks 50 -seek-from 1796652180000 -seek-to 1796659380000
//	loadgen -gateways ws://127.0.0.1:8001 -viewers 25 -layers 1280x720:60000,640x360:20000,320x180:6000 -group 'slow=5@600:width=1280&v=2'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var (
		gateways   = fs.String("gateways", "ws://127.0.0.1:8000", "comma-separated base URLs of the gateways; viewers are spread over them round-robin")
		publishTo  = fs.String("publish-to", "", "base URL of the gateway publishers use (default: the first of -gateways)")
		room       = fs.String("room", "bench", "room name (with several publishers: ROOM_1, ROOM_2, ...)")
		viewers    = fs.Int("viewers", 10, "reading viewers")
		stalled    = fs.Int("stalled", 0, "extra viewers that connect and never read")
		fps        = fs.Float64("fps", 30, "frames per second per publisher; 0 sends as fast as the gateway takes them")
		size       = fs.Int("size", 50000, "JPEG payload bytes per frame")
		layers     = fs.String("layers", "", "publish each picture as layers, version-2 messages: WIDTHxHEIGHT:BYTES per layer, comma-separated, the first being the main layer viewers get (e.g. 1280x720:60000,640x360:20000,320x180:6000); replaces -size; default: one version-1 message of -size bytes")
		h264       = fs.String("h264", "", "play this Annex-B H.264 file (an access unit delimiter before every picture, SPS and PPS before every keyframe: x264's aud=1:repeat-headers=1), looping, as version-2 H.264 messages with a configuration before every keyframe, answering keyframe requests; viewers get it with -group NAME=N:v=2&codec=h264; replaces -size and -layers")
		lateJoins  = fs.Int("late-joins", 0, "join the live room this many times, one after another, on a replica with no viewer of it (-late-join-to), measuring the time to the first picture (the first keyframe with -h264) and to catching up; with -redis, each join waits for the replica to unsubscribe; the window ends when they are done (-duration caps it)")
		lateJoinTo = fs.String("late-join-to", "", "base URL of the replica late joiners dial (default: the last of -gateways)")
		joinPause  = fs.Duration("late-join-pause", 2*time.Second, "longest pseudo-random pause before each late join (use the keyframe interval, so joins fall all over a group of pictures)")
		seeks      = fs.Int("seeks", 0, "move one v=2 viewer of the room (codec=h264 with -h264) on the first of -gateways between the room's recording and live this many times, measuring from each seek to the recording's first picture and from each live to the first live picture (the gateway plays back from a store holding the room's footage between -seek-from and -seek-to); the window ends when they are done (-duration caps it)")
		seekFrom   = fs.String("seek-from", "", "earliest time sought: RFC 3339 or Unix milliseconds")
		seekTo     = fs.String("seek-to", "", "latest time sought: RFC 3339 or Unix milliseconds")
		seekHold   = fs.Duration("seek-hold", 300*time.Millisecond, "how long the seeking viewer plays after each move")
		format     = fs.String("format", loadgen.FormatBinary, "viewer wire format: binary or json")
		duration   = fs.Duration("duration", 10*time.Second, "measured window (idle mode: how long to hold the connections)")
		warmup     = fs.Duration("warmup", 2*time.Second, "publishing time before the window; not counted")
		drain      = fs.Duration("drain", 2*time.Second, "longest wait for frames in flight after the window")
		publishers = fs.Int("publishers", 1, "publishers, one room each")
		roomViews  = fs.String("room-viewers", "", "comma-separated reading viewers per room, room 1's first (e.g. 300,150,100,1,1): one publisher per room, the viewers filling the rooms in order (groups take whole rooms from the first); sets -viewers and -publishers unless they are given")
		spreadPubs = fs.Bool("spread-publishers", false, "publisher i connects to the i-th of -gateways (round-robin) instead of -publish-to")
		rate       = fs.Float64("connect-rate", 0, "viewer connections per second; 0 = as fast as -connect-concurrency allows")
		conc       = fs.Int("connect-concurrency", 32, "concurrent viewer handshakes")
		idle       = fs.Int("idle", 0, "idle mode: connect this many viewers that only hold their connections, and report the connect rate and gateway memory")
		ceiling    = fs.Bool("ceiling", false, "also measure the loopback ceiling: a child process writes frames of the viewers' message size to as many TCP connections from one thread per core, this one reads them")
		ceilDur    = fs.Duration("ceiling-duration", 3*time.Second, "measured window of the ceiling")
		ceilWriter = fs.Bool("ceiling-writer", false, "internal: run as the ceiling's writing process (parameters in $"+loadgen.CeilingWriterEnv+")")
		pids       = fs.String("watch-pids", "", "comma-separated gateway PIDs whose CPU time and RSS are read from /proc")
		redisAddr  = fs.String("redis", "", "host:port of the Redis whose INFO total_net_output_bytes is read before publishing and after the last frame arrived, per frame published")
		asJSON     = fs.Bool("json", false, "print the report as JSON")
		quiet      = fs.Bool("q", false, "no progress lines on stderr")
		cpuProfile = fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file (it shares the cores it measures: check it stays cheap)")
	)
	var groups []loadgen.ViewerGroup
	fs.Func("group", "a viewer group, repeatable: NAME=N[@KBPS][:QUERY]: the next N reading viewers (of -viewers) add QUERY to their URL and, with @KBPS, connect through an in-process proxy that limits gateway → viewer to KBPS kB/s each; figures are reported per group (e.g. -group 'tile=50:width=320&v=2' -group 'slow=5@600:width=1280&v=2')", func(s string) error {
		g, err := loadgen.ParseGroup(s)
		if err != nil {
			return err
		}
		groups = append(groups, g)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: loadgen [flags]\n\nDrives framecast gateways with publishers and viewers and reports delivery, latency and throughput.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *ceilWriter {
		if err := loadgen.ServeCeilingWriter(os.Getenv(loadgen.CeilingWriterEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			return 1
		}
		return 0
	}
	watch, err := parsePIDs(*pids)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: invalid -watch-pids: %v\n", err)
		return 2
	}
	roomList, err := loadgen.ParseRoomViewers(*roomViews)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: invalid -room-viewers: %v\n", err)
		return 2
	}
	if len(roomList) > 0 {
		// The list decides both counts unless they are given (then
		// Validate checks that they agree with it).
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if !given["viewers"] {
			*viewers = 0
		}
		if !given["publishers"] {
			*publishers = 0
		}
	}
	layerList, err := loadgen.ParseLayers(*layers)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: invalid -layers: %v\n", err)
		return 2
	}
	var seekRange [2]time.Time
	for i, v := range []string{*seekFrom, *seekTo} {
		if v == "" {
			continue
		}
		if seekRange[i], err = parseTime(v); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: invalid -seek-from/-seek-to: %v\n", err)
			return 2
		}
	}
	cfg := loadgen.Config{
		Gateways:           strings.Split(*gateways, ","),
		PublishTo:          *publishTo,
		Room:               *room,
		Viewers:            *viewers,
		Stalled:            *stalled,
		FPS:                *fps,
		Size:               *size,
		Layers:             layerList,
		H264:               *h264,
		LateJoins:          *lateJoins,
		LateJoinTo:         *lateJoinTo,
		LateJoinPause:      *joinPause,
		Seeks:              *seeks,
		SeekFrom:           seekRange[0],
		SeekTo:             seekRange[1],
		SeekHold:           *seekHold,
		Groups:             groups,
		Format:             *format,
		Warmup:             *warmup,
		Duration:           *duration,
		Drain:              *drain,
		Publishers:         *publishers,
		RoomViewers:        roomList,
		SpreadPublishers:   *spreadPubs,
		ConnectRate:        *rate,
		ConnectConcurrency: *conc,
		Idle:               *idle,
		Ceiling:            *ceiling,
		CeilingDuration:    *ceilDur,
		WatchPIDs:          watch,
		RedisAddr:          *redisAddr,
	}
	if *warmup == 0 {
		cfg.Warmup = -1 // Config treats 0 as "default" and negative as none
	}
	if !*quiet {
		cfg.Log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: failed to start the CPU profile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := loadgen.Run(ctx, cfg)
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			rep.WriteText(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
}

func parsePIDs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("%q is not a process ID", f)
		}
		out = append(out, pid)
	}
	return out, nil
}

// parseTime reads an RFC 3339 time or Unix milliseconds, as the gateway's
// playback times are written (relative times are not: a range of
// recorded footage is fixed when the run starts).
func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither an RFC 3339 time nor Unix milliseconds", s)
	}
	return t, nil
}
