package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// S11 measures the H.264 path's encoder (#14 item 8): internal/h264enc's encode
// CPU per picture, and internal/h264enc/codeccompare's bytes per second and
// SSIM against JPEG quality 80 on the project's 720p30 test clip. Registered
// here, like S8, so that the scenario list in scenarios.go stays untouched.
func init() {
	scenarios = append(scenarios, scenario{"S11", "H.264 vs JPEG: bytes per second and SSIM on the 720p30 test clip, encode CPU", runS11})
}

func runS11(b *bench, sec *section) error {
	ctx, cancel := context.WithTimeout(b.ctx, 6*time.Minute)
	defer cancel()
	goCmd := func(args ...string) (string, error) {
		cmdline := "go " + strings.Join(args, " ")
		sec.commands = append(sec.commands, cmdline)
		b.logf("%s", cmdline)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = b.root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("`%s` failed: %w: %s", cmdline, err, strings.TrimSpace(string(out)))
		}
		return string(out), nil
	}
	benchtime := "300x"
	compare := []string{"run", "./internal/h264enc/codeccompare", "-seconds", "10", "-x264", "1000,2500"}
	if b.quick {
		benchtime = "20x"
		compare = []string{"run", "./internal/h264enc/codeccompare", "-seconds", "2", "-x264", ""}
	}
	out, err := goCmd("test", "-run=^$", "-bench=BenchmarkEncode", "-benchtime="+benchtime, "./internal/h264enc/")
	if err != nil {
		return err
	}
	sec.printf("Encode CPU per picture (OpenH264 through cgo, one thread, default bitrate for the size, the noisy test clip): " +
		"one benchmark iteration = one picture.\n\n| benchmark | iterations | per picture | pictures/s per core | other metrics |\n|---|---|---|---|---|\n")
	var perFrame []string
	for _, line := range strings.Split(out, "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		sec.printf("| %s | %s | %.2f ms | %.0f | %s |\n", m[1], m[2], ns/1e6, 1e9/ns, strings.Join(strings.Fields(m[4]), " "))
		perFrame = append(perFrame, fmt.Sprintf("%.2f ms", ns/1e6))
	}
	sec.printf("\n")
	b.summary("S11", "sender H.264 encode CPU per picture, 640×480 / 1280×720", strings.Join(perFrame, " / "), "reported", "", "")
	if out, err = goCmd(compare...); err != nil {
		return err
	}
	// go run's own output (build lines) goes to stderr, mixed in by
	// CombinedOutput: keep from the program's first line on.
	if i := strings.Index(out, "The project's test clip"); i > 0 {
		out = out[i:]
	}
	sec.printf("%s\n", out)
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "**default**") {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) > 8 {
			b.summary("S11", "H.264 (default) vs JPEG q80: bytes ÷, SSIM All − JPEG's", strings.TrimSpace(f[5])+" fewer, "+strings.TrimSpace(f[8]),
				"≥ 4×, ≥ −0.03", "", "")
		}
	}
	return nil
}
