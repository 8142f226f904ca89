package gateway_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// recCPU returns the CPU time (user + system) process pid has used.
func recCPU(t testing.TB, pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// BenchmarkRecordingLivePath measures the live path of one gateway
// process with 20 rooms (a 30 fps publisher of 20 kB JPEGs and a viewer
// each) recorded by that same gateway, against none recorded, in one run:
// gateway CPU per delivered frame, and the share of frames the viewers got.
// Recording on the gateway that serves the viewers is the worst case
// (compose's recorders are replicas of their own). Each case runs once
// for recWindow whatever b.N is; compare the two in one run (the machine's
// load varies between runs).
func BenchmarkRecordingLivePath(b *testing.B) {
	for _, recording := range []bool{false, true} {
		b.Run(fmt.Sprintf("rooms=20/recording=%v", recording), func(b *testing.B) {
			recLivePath(b, 20, recording)
		})
	}
}

const recWindow = 10 * time.Second

func recLivePath(b *testing.B, rooms int, recording bool) {
	env := []string{"GATEWAY_LOG_LEVEL=warn"}
	if recording {
		env = append(env, "GATEWAY_RECORD=*", "GATEWAY_RECORD_STORE="+b.TempDir(), "GATEWAY_RECORD_MIN_FREE=1MiB")
	}
	g := testenv.StartGateway(b, env...)
	var delivered atomic.Int64
	pubs := make([]*testenv.Publisher, 0, rooms)
	for i := range rooms {
		room := fmt.Sprintf("cam%02d", i)
		v := testenv.Dial(b, wsURL(g.URL(), room, "role=view&format=binary"), nil)
		go func() {
			for {
				if _, err := v.ReadFrame(5 * time.Second); err != nil {
					return
				}
				delivered.Add(1)
			}
		}()
		pic := testenv.JPEG(b, 320, 240, i, 20000)
		p := testenv.Dial(b, wsURL(g.URL(), room, "role=publish"), nil)
		p.ReadUntilClosed()
		pubs = append(pubs, p.Publish(b, 33*time.Millisecond, false, func(uint64) []byte { return pic }))
	}
	// Warm up: every room recorded (or not), every viewer receiving.
	testenv.WaitFor(b, 15*time.Second, "the rooms to settle", func() error {
		if recording && testenv.Metric(b, g.URL(), "framecast_recording_rooms") != float64(rooms) {
			return fmt.Errorf("%v rooms recorded", testenv.Metric(b, g.URL(), "framecast_recording_rooms"))
		}
		if delivered.Load() < int64(rooms*10) {
			return fmt.Errorf("%d frames delivered", delivered.Load())
		}
		return nil
	})
	pid := g.Proc.Cmd.Process.Pid
	sent0 := uint64(0)
	for _, p := range pubs {
		sent0 += p.Seq()
	}
	cpu0, got0, t0 := recCPU(b, pid), delivered.Load(), time.Now()
	b.ResetTimer()
	// The measuring window, not a wait for a condition: the publishers
	// send at their own pace meanwhile, and the counters are read after.
	time.Sleep(recWindow)
	b.StopTimer()
	cpu, got, elapsed := recCPU(b, pid)-cpu0, delivered.Load()-got0, time.Since(t0)
	sent := uint64(0)
	for _, p := range pubs {
		sent += p.Seq()
	}
	sent -= sent0
	if got == 0 {
		b.Fatal("nothing delivered")
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(got), "cpu-µs/frame")
	b.ReportMetric(100*float64(got)/float64(sent), "%delivered")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "%cpu")
	if recording {
		b.ReportMetric(testenv.Metric(b, g.URL(), "framecast_recording_dropped_frames_total"), "rec-dropped")
	}
}
