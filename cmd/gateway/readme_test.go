package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/framecast/framecast/internal/testenv"
)

// TestReadmeListsEverySetting keeps the README's settings tables true: every
// setting `gateway -h` and `sender -h` print must appear in README.md.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile(testenv.RepoRoot(t) + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\b(GATEWAY|SENDER)_[A-Z0-9_]+[A-Z0-9]\b`) // digits: GATEWAY_S3_*
	for _, name := range []string{"gateway", "sender"} {
		out, err := exec.Command(testenv.Binary(t, name), "-h").CombinedOutput()
		if err != nil {
			t.Fatalf("%s -h: %v\n%s", name, err, out)
		}
		settings := re.FindAllString(string(out), -1)
		if len(settings) < 8 {
			t.Fatalf("%s -h lists only %v", name, settings)
		}
		for _, s := range settings {
			// The README may group related settings as `X_MIN` / `_MAX`.
			base, suffix, _ := strings.Cut(s, "_")
			parts := strings.Split(suffix, "_")
			last := "_" + parts[len(parts)-1]
			grouped := base + "_" + strings.Join(parts[:len(parts)-1], "_")
			if !strings.Contains(string(readme), s) &&
				!(len(parts) > 1 && strings.Contains(string(readme), grouped) && strings.Contains(string(readme), "`"+last+"`")) {
				t.Errorf("README.md does not document %s (from `%s -h`)", s, name)
			}
		}
	}
}
