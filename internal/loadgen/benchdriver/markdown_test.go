package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOptimizationTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.md")
	doc := "# Log\n\nintro | not a table\n\n| change | measure | before | after | ratio |\n|---|---|---|---|---|\n| a | b | 1 | 2 | 2× |\n\n## Later\n\n| other | table |\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := optimizationTable(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "| change | measure | before | after | ratio |\n|---|---|---|---|---|\n| a | b | 1 | 2 | 2× |\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := os.WriteFile(path, []byte("# Log\n\nno table\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := optimizationTable(path); err == nil {
		t.Fatal("a log without the table gave no error")
	}
}

// TestThePerformanceLogHasItsTable: make bench copies the log's table into
// docs/benchmarks.md and fails without it.
func TestThePerformanceLogHasItsTable(t *testing.T) {
	got, err := optimizationTable(filepath.Join("..", "..", "..", "docs", "performance-log.md"))
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(got, "\n"); rows < 10 {
		t.Fatalf("the performance log's table has %d lines", rows)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"-viewers":                   "-viewers",
		"ws://127.0.0.1:1,ws://x:2":  "ws://127.0.0.1:1,ws://x:2",
		"slow=5@800:width=1280&v=2":  "'slow=5@800:width=1280&v=2'",
		"it's":                       `'it'\''s'`,
		"":                           "''",
		"1280x720:60000,640x360:200": "1280x720:60000,640x360:200",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestSummaryPutsS13BesideS2: S13, saturation at camera rates, is read
// beside S2's saturation although it runs last.
func TestSummaryPutsS13BesideS2(t *testing.T) {
	b := &bench{}
	for _, id := range []string{"S1", "S2", "S2", "S3", "S12", "S13", "S13"} {
		b.summary(id, "m", "v", "", "", "")
	}
	var got []string
	for line := range strings.Lines(b.markdown()) {
		if id, ok := strings.CutPrefix(line, "| S"); ok {
			got = append(got, "S"+strings.Fields(id)[0])
		}
	}
	if want := "S1 S2 S2 S13 S13 S3 S12"; strings.Join(got, " ") != want {
		t.Errorf("summary order %v, want %s", got, want)
	}
}

func TestRoomList(t *testing.T) {
	if got := roomList([]int{30, 15, 4, 4, 1, 1, 1}); got != "30, 15, 4×2, 1×3" {
		t.Errorf("roomList = %q", got)
	}
}

func TestS13Classes(t *testing.T) {
	rooms := []int{10, 5, 4, 3, 2, 2, 1, 1} // the last quarter (2 rooms) have one viewer
	if large, medium := s13Classes(rooms); large != 19 || medium != 7 {
		t.Errorf("s13Classes = %d, %d; want 19, 7", large, medium)
	}
}
