package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/promtext"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ). It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcSample is one reading of a process's CPU time and resident memory.
type ProcSample struct {
	CPU   time.Duration // user + system time of all threads
	RSSKB int64         // VmRSS
}

// ReadProc reads pid's CPU time from /proc/PID/stat and its resident set
// size from /proc/PID/status.
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("failed to read process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTicks
	s.RSSKB, err = readStatusKB(pid, "VmRSS:")
	return s, err
}

func readStatusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("failed to read process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// MachineCPU is a reading of /proc/stat's aggregate cpu line, in clock
// ticks summed over all CPUs.
type MachineCPU struct {
	Busy, Steal, Total int64
}

// ReadMachineCPU reads the whole machine's CPU counters.
func ReadMachineCPU() (MachineCPU, error) {
	var m MachineCPU
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return m, errors.New("malformed /proc/stat")
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is already counted in user.
	for i := 1; i <= 8; i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return m, errors.New("malformed /proc/stat")
		}
		m.Total += v
		switch i {
		case 4, 5: // idle, iowait
		case 8:
			m.Steal += v
		default:
			m.Busy += v
		}
	}
	return m, nil
}

// selfCPU returns this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisProbe runs f on a client of the Redis at addr, within ctx's
// deadline or 3 s, and closes the client.
func redisProbe(ctx context.Context, addr string, f func(context.Context, *redis.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{
		Addr: addr,
		// RESP2 and no CLIENT SETINFO: the connection sends nothing but
		// the probe's command, so the server's byte counters (INFO stats)
		// move by its reply alone.
		Protocol:              2,
		DisableIdentity:       true,
		MaxRetries:            -1,
		PoolSize:              1,
		ContextTimeoutEnabled: true,
	})
	defer c.Close()
	return f(ctx, c)
}

// RedisInfoField sends INFO section to the Redis at addr and returns the
// integer field name from the reply (e.g. "stats", "total_net_output_bytes").
func RedisInfoField(ctx context.Context, addr, section, name string) (int64, error) {
	var info string
	if err := redisProbe(ctx, addr, func(ctx context.Context, c *redis.Client) (err error) {
		info, err = c.Info(ctx, section).Result()
		return err
	}); err != nil {
		return 0, fmt.Errorf("failed to read INFO %s from redis at %s: %w", section, addr, err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO %s", name, section)
}

// Metrics is a scrape of a Prometheus text endpoint (internal/promtext).
type Metrics = promtext.Metrics

// ScrapeMetrics GETs a Prometheus text endpoint and parses it, within ctx's
// deadline, or 5 s when ctx has none.
func ScrapeMetrics(ctx context.Context, url string) (Metrics, error) {
	return promtext.Scrape(ctx, url)
}

// ParseMetrics parses the Prometheus text exposition format, keeping
// samples and skipping comments.
func ParseMetrics(r io.Reader) (Metrics, error) { return promtext.Parse(r) }

// RedisNumSub returns how many clients of the Redis at addr are
// subscribed to channel (PUBSUB NUMSUB), within ctx's deadline or 3 s.
func RedisNumSub(ctx context.Context, addr, channel string) (int64, error) {
	var subs map[string]int64
	if err := redisProbe(ctx, addr, func(ctx context.Context, c *redis.Client) (err error) {
		subs, err = c.PubSubNumSub(ctx, channel).Result()
		return err
	}); err != nil {
		return 0, fmt.Errorf("failed to read PUBSUB NUMSUB %s from redis at %s: %w", channel, addr, err)
	}
	return subs[channel], nil
}
