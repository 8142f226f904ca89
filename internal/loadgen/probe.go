package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// RedisInfoField sends INFO section to the Redis at addr and returns the
// integer field name from the reply (e.g. "stats", "total_net_output_bytes").
func RedisInfoField(ctx context.Context, addr, section, name string) (int64, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("failed to reach redis at %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c, "INFO %s\r\n", section); err != nil {
		return 0, fmt.Errorf("failed to send INFO: %w", err)
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("failed to read INFO reply: %w", err)
	}
	if !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("unexpected INFO reply %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("unexpected INFO reply %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, fmt.Errorf("failed to read INFO reply: %w", err)
	}
	for line := range strings.Lines(string(body)) {
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
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("failed to reach redis at %s: %w", addr, err)
	}
	defer c.Close()
	deadline := time.Now().Add(3 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c, "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$%d\r\n%s\r\n", len(channel), channel); err != nil {
		return 0, fmt.Errorf("failed to send PUBSUB NUMSUB: %w", err)
	}
	// The reply is *2, the channel as a bulk string, then :N.
	r := bufio.NewReader(c)
	var lines [4]string
	for i := range lines {
		if lines[i], err = r.ReadString('\n'); err != nil {
			return 0, fmt.Errorf("failed to read the PUBSUB NUMSUB reply: %w", err)
		}
		lines[i] = strings.TrimSpace(lines[i])
	}
	if lines[0] != "*2" || lines[2] != channel || !strings.HasPrefix(lines[3], ":") {
		return 0, fmt.Errorf("unexpected PUBSUB NUMSUB reply %q", lines)
	}
	return strconv.ParseInt(lines[3][1:], 10, 64)
}
