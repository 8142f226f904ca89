package main

// -paired: the table of scripts/paired.sh's runs. The script runs this
// driver (or an older revision's) once per revision per round with -out
// DIR/bench/roundN-{old,new}.md and -raw ...json; this reads them back.
// Older drivers wrote the same summary table, so the summary's cells are
// the measures; a few figures the summary gives only as ratios (S2's
// payload in MB/s, S1's CPU per delivery) are taken from the raw reports.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/framecast/framecast/internal/loadgen"
)

// pairedRun is one run's measures: key (scenario and measure) to value.
type pairedRun struct {
	keys   []string // in the order the run printed them
	values map[string]string
}

func (r *pairedRun) add(key, value string) {
	if _, ok := r.values[key]; !ok {
		r.keys = append(r.keys, key)
	}
	r.values[key] = value
}

// printPaired prints the table of the paired runs in dir.
func printPaired(w io.Writer, dir string) error {
	rounds := map[int][2]*pairedRun{}
	for side, name := range []string{"old", "new"} {
		mds, _ := filepath.Glob(filepath.Join(dir, "bench", "round*-"+name+".md"))
		for _, md := range mds {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(md), "round"), "-"+name+".md"))
			if err != nil {
				continue
			}
			run, err := readPairedRun(md, strings.TrimSuffix(md, ".md")+".json")
			if err != nil {
				return err
			}
			pair := rounds[n]
			pair[side] = run
			rounds[n] = pair
		}
	}
	var nums []int
	for n, pair := range rounds {
		if pair[0] != nil && pair[1] != nil {
			nums = append(nums, n)
		}
	}
	if len(nums) == 0 {
		return fmt.Errorf("no round in %s has both an old and a new run (bench/roundN-old.md and -new.md)", dir)
	}
	slices.Sort(nums)
	var keys []string
	for _, n := range nums {
		for _, side := range rounds[n] {
			for _, k := range side.keys {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	// The raw figures after their scenario's summary rows, S13 beside S2
	// as in the summary.
	slices.SortStableFunc(keys, func(a, b string) int {
		sa, _, _ := strings.Cut(a, "\t")
		sb, _, _ := strings.Cut(b, "\t")
		return cmp.Compare(summaryRank(sa), summaryRank(sb))
	})
	fmt.Fprintf(w, "| scenario | measure | round | old | new | new ÷ old |\n|---|---|---|---|---|---|\n")
	for _, k := range keys {
		scenario, measure, _ := strings.Cut(k, "\t")
		for _, n := range nums {
			o, nw := rounds[n][0].values[k], rounds[n][1].values[k]
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s |\n", scenario, measure, n, orDash(o), orDash(nw), ratios(o, nw))
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// readPairedRun reads one run's summary table from md and the figures
// taken from its raw reports.
func readPairedRun(md, raw string) (*pairedRun, error) {
	doc, err := os.ReadFile(md)
	if err != nil {
		return nil, err
	}
	run := &pairedRun{values: map[string]string{}}
	inSummary := false
	for line := range strings.Lines(string(doc)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "## "):
			inSummary = line == "## Summary"
		case inSummary && strings.HasPrefix(line, "| S"):
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if len(cells) >= 3 {
				run.add(strings.TrimSpace(cells[0])+"\t"+strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2]))
			}
		}
	}
	data, err := os.ReadFile(raw)
	if os.IsNotExist(err) {
		return run, nil
	}
	if err != nil {
		return nil, err
	}
	var reports []rawReport
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", raw, err)
	}
	rawMeasures(run, reports)
	return run, nil
}

// rawMeasures adds what the summary gives only as ratios: S1's gateway
// CPU per delivery, and per S2 fan-out the payload at saturation and at
// the highest rate with >= 99% delivered, in MB/s, and the ceiling.
func rawMeasures(run *pairedRun, reports []rawReport) {
	for _, rr := range reports {
		if r := rr.Report; rr.Scenario == "S1" && r != nil && r.Received > 0 {
			run.add("S1\tgateway CPU per delivery, both replicas (raw)", fmt.Sprintf("%.1f µs", gatewayCPUPerDelivery(r)))
		}
	}
	for _, fanout := range []int{100, 1000} {
		var peak, strict, ceil *loadgen.Report
		for _, rr := range reports {
			r := rr.Report
			if rr.Scenario != "S2" || r == nil || r.Viewers != fanout {
				continue
			}
			if r.Ceiling != nil && ceil == nil {
				ceil = r
			}
			if !cutOff(r) && (peak == nil || r.MBSec > peak.MBSec) {
				peak = r
			}
			if sustained(r) && (strict == nil || r.FPS > strict.FPS) {
				strict = r
			}
		}
		key := fmt.Sprintf("S2\tfan-out %d: delivered MB/s at saturation / at the highest rate with ≥ 99%% delivered (raw)", fanout)
		switch {
		case peak != nil && strict != nil:
			run.add(key, fmt.Sprintf("%.0f / %.0f", peak.MBSec, strict.MBSec))
		case peak != nil:
			run.add(key, fmt.Sprintf("%.0f / –", peak.MBSec))
		}
		if ceil != nil {
			run.add(fmt.Sprintf("S2\tfan-out %d: loopback ceiling MB/s (raw; the probe is the driver's)", fanout), fmt.Sprintf("%.0f", ceil.Ceiling.MBSec))
		}
	}
}

// number finds the figures in a cell, not the digits of a name such as
// "p99" or "H.264" (the figure is the second group).
var number = regexp.MustCompile(`(^|[^\pL\d.])(\d+(?:\.\d+)?)`)

func figures(cell string) []string {
	var out []string
	for _, m := range number.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[2])
	}
	return out
}

// ratios divides each number in nw by the number in the same place in
// old: "2.65 ms / 4.42 ms" against "2.40 ms / 4.80 ms" gives
// "0.91× / 1.09×". Cells whose numbers do not pair up give "–".
func ratios(old, nw string) string {
	o, n := figures(old), figures(nw)
	if len(o) == 0 || len(o) != len(n) {
		return "–"
	}
	out := make([]string, len(o))
	for i := range o {
		a, _ := strconv.ParseFloat(o[i], 64)
		b, _ := strconv.ParseFloat(n[i], 64)
		switch {
		case a == 0 && b == 0:
			out[i] = "="
		case a == 0:
			out[i] = "–"
		default:
			out[i] = fmt.Sprintf("%.2f×", b/a)
		}
	}
	return strings.Join(out, " / ")
}
