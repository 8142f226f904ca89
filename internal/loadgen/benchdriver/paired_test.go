package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/framecast/framecast/internal/loadgen"
)

func TestRatios(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{"2.00 ms / 4.00 ms", "1.00 ms / 5.00 ms", "0.50× / 1.25×"},
		{"100.00%", "99.00%", "0.99×"},
		{"0 / 0", "0 / 3", "= / –"},
		{"none", "93 fps", "–"},
		{"1 / 2", "1", "–"},
		{"30.00% (98.00% delivered, p99 100 ms)", "33.00% (100.00% delivered, p99 50.0 ms)", "1.10× / 1.02× / 0.50×"},
		{"1.96 / 0.67 ms; 0.54× H.264", "0.98 / 0.67 ms; 0.54× H.264", "0.50× / 1.00× / 1.00×"},
	} {
		if got := ratios(tc.old, tc.new); got != tc.want {
			t.Errorf("ratios(%q, %q) = %q, want %q", tc.old, tc.new, got, tc.want)
		}
	}
}

func TestPrintPaired(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, p50 string, mbs float64) {
		md := "# Benchmarks\n\n## Summary\n\n| scenario | measure | framecast | target | seed | centrifugo |\n|---|---|---|---|---|---|\n" +
			"| S1 | latency p50 / p99 | " + p50 + " | ≤ 2 ms | | |\n\n## S1: nominal\n\n| S1 | not the summary | 9 | | | |\n"
		if err := os.WriteFile(filepath.Join(dir, "bench", name+".md"), []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal([]rawReport{{Scenario: "S2", Report: &loadgen.Report{Viewers: 100, FPS: 100, SentFPS: 100, DeliveryRatio: 1, MBSec: mbs}}})
		if err := os.WriteFile(filepath.Join(dir, "bench", name+".json"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("round1-old", "2.00 ms / 4.00 ms", 1000)
	write("round1-new", "3.00 ms / 4.00 ms", 1100)
	write("round2-old", "2.00 ms / 4.00 ms", 1000) // no new run: left out
	var out strings.Builder
	if err := printPaired(&out, dir); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| S1 | latency p50 / p99 | 1 | 2.00 ms / 4.00 ms | 3.00 ms / 4.00 ms | 1.50× / 1.00× |",
		"| S2 | fan-out 100: delivered MB/s at saturation / at the highest rate with ≥ 99% delivered (raw) | 1 | 1000 / 1000 | 1100 / 1100 | 1.10× / 1.10× |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "not the summary") || strings.Contains(got, "| 2 |") {
		t.Errorf("table has rows it should not:\n%s", got)
	}
}
