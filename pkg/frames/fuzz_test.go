package frames_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// The seed corpora live in testdata/fuzz/<target>/: valid frames (header,
// bare, offline, both data URL spellings) and near misses of each check.
// limit is maxBytes as a uint16 so the fuzzer reaches both the unlimited
// (0) and the too-large paths.

var fuzzNow = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func FuzzParseBinary(f *testing.F) {
	f.Add(frames.AppendBinary(nil, 1, ts, tinyJPEG(f)), uint16(0))
	f.Fuzz(func(t *testing.T, msg []byte, limit uint16) {
		in := bytes.Clone(msg)
		fr, err := frames.ParseBinary(msg, 7, fuzzNow, int(limit))
		if err != nil {
			if fr != nil {
				t.Fatalf("frame returned with error %v", err)
			}
			return
		}
		if !bytes.Equal(msg, in) {
			t.Fatal("ParseBinary modified its input")
		}
		checkFrame(t, fr, int(limit))
		g, err := frames.ParseBinary(fr.Binary(), 0, time.Time{}, int(limit))
		if err != nil {
			t.Fatalf("Binary() of a parsed frame does not parse: %v", err)
		}
		sameFrame(t, fr, g)
		if !bytes.Equal(g.Binary(), fr.Binary()) {
			t.Fatal("Binary() changed through a round trip")
		}
		switch msg[0] {
		case 0xFF:
		case frames.VersionLayered:
			// A version-2 message ends with the version-1 one, and is its
			// own version-2 form.
			lb, err := frames.ParseLayerBlock(msg)
			if err != nil {
				t.Fatalf("parsed version-2 message's layer block: %v", err)
			}
			if !bytes.Equal(fr.Binary(), msg[lb.Len:]) {
				t.Fatal("Binary() of a version-2 message is not its version-1 suffix")
			}
			if !bytes.Equal(fr.BinaryV2(), msg) {
				t.Fatal("BinaryV2() of a version-2 message is not the message")
			}
		default:
			if !bytes.Equal(fr.Binary(), msg) {
				t.Fatal("Binary() of a header message is not the message")
			}
		}
	})
}

func FuzzParseDataURL(f *testing.F) {
	f.Add(frames.AppendDataURL(nil, tinyJPEG(f)), uint16(0))
	f.Fuzz(func(t *testing.T, msg []byte, limit uint16) {
		in := bytes.Clone(msg)
		fr, err := frames.ParseDataURL(msg, 7, fuzzNow, int(limit))
		if err != nil {
			if fr != nil {
				t.Fatalf("frame returned with error %v", err)
			}
			return
		}
		if !bytes.Equal(msg, in) {
			t.Fatal("ParseDataURL modified its input")
		}
		if fr.Kind != frames.KindJPEG || fr.Seq != 7 || !fr.Captured.Equal(fuzzNow) {
			t.Fatalf("got kind %d seq %d captured %v", fr.Kind, fr.Seq, fr.Captured)
		}
		checkFrame(t, fr, int(limit))
		g, err := frames.ParseDataURL(frames.AppendDataURL(nil, fr.Payload), 7, fuzzNow, int(limit))
		if err != nil {
			t.Fatalf("AppendDataURL of a parsed frame does not parse: %v", err)
		}
		sameFrame(t, fr, g)
		b, err := frames.ParseBinary(fr.Binary(), 0, time.Time{}, int(limit))
		if err != nil {
			t.Fatalf("Binary() of a parsed data URL does not parse: %v", err)
		}
		sameFrame(t, fr, b)
	})
}

// checkFrame checks what every successfully parsed frame promises.
func checkFrame(t *testing.T, fr *frames.Frame, limit int) {
	t.Helper()
	switch fr.Kind {
	case frames.KindJPEG:
		if err := frames.CheckJPEG(fr.Payload, limit); err != nil {
			t.Fatalf("parsed frame fails CheckJPEG: %v", err)
		}
		js := fr.JSON()
		if !json.Valid(js) {
			t.Fatalf("JSON() is not valid JSON: %.100s", js)
		}
		var env envelope
		if err := json.Unmarshal(js, &env); err != nil {
			t.Fatal(err)
		}
		g, err := frames.ParseDataURL([]byte(env.Message), 0, time.Time{}, limit)
		if err != nil {
			t.Fatalf("JSON message does not parse back: %v", err)
		}
		if !bytes.Equal(g.Payload, fr.Payload) || env.Seq != fr.Seq || env.TS != fr.Captured.UnixMicro() {
			t.Fatal("JSON() does not carry the frame")
		}
	case frames.KindOffline:
		if len(fr.Payload) != 0 || fr.JSON() != nil {
			t.Fatal("offline event with a payload")
		}
	case frames.KindH264Config:
		if _, err := frames.ParseH264Config(fr.Payload); err != nil {
			t.Fatalf("parsed configuration does not parse: %v", err)
		}
		if fr.JSON() != nil {
			t.Fatal("H.264 message with a JSON form")
		}
	case frames.KindH264Key, frames.KindH264Delta:
		if !bytes.HasPrefix(fr.Payload, []byte{0, 0, 1}) && !bytes.HasPrefix(fr.Payload, []byte{0, 0, 0, 1}) {
			t.Fatal("parsed access unit is not Annex B")
		}
		if limit > 0 && len(fr.Payload) > limit {
			t.Fatalf("access unit of %d bytes passed a limit of %d", len(fr.Payload), limit)
		}
		if fr.JSON() != nil {
			t.Fatal("H.264 message with a JSON form")
		}
	default:
		t.Fatalf("parsed frame has unknown kind %d", fr.Kind)
	}
	if len(fr.Binary()) != frames.HeaderSize+len(fr.Payload) {
		t.Fatalf("Binary() is %d bytes for a %d-byte JPEG", len(fr.Binary()), len(fr.Payload))
	}
}

func sameFrame(t *testing.T, a, b *frames.Frame) {
	t.Helper()
	if a.Kind != b.Kind || a.Seq != b.Seq || a.Captured.UnixMicro() != b.Captured.UnixMicro() || !bytes.Equal(a.Payload, b.Payload) {
		t.Fatalf("round trip changed the frame: kind %d→%d seq %d→%d ts %d→%d JPEG %d→%d bytes",
			a.Kind, b.Kind, a.Seq, b.Seq, a.Captured.UnixMicro(), b.Captured.UnixMicro(), len(a.Payload), len(b.Payload))
	}
}

// TestFuzzCorpus keeps the committed seed corpora meaningful: every file
// named valid_* parses and every invalid_* is refused.
func TestFuzzCorpus(t *testing.T) {
	parsers := map[string]func([]byte, uint64, time.Time, int) (*frames.Frame, error){
		"FuzzParseBinary":  frames.ParseBinary,
		"FuzzParseDataURL": frames.ParseDataURL,
	}
	for target, parse := range parsers {
		dir := filepath.Join("testdata", "fuzz", target)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) < 4 {
			t.Fatalf("%s holds %d seeds, want a few valid and invalid ones", dir, len(entries))
		}
		for _, e := range entries {
			t.Run(target+"/"+e.Name(), func(t *testing.T) {
				msg, limit := readSeed(t, filepath.Join(dir, e.Name()))
				_, err := parse(msg, 1, fuzzNow, limit)
				switch {
				case strings.HasPrefix(e.Name(), "valid_") && err != nil:
					t.Errorf("valid seed refused: %v", err)
				case strings.HasPrefix(e.Name(), "invalid_") && err == nil:
					t.Errorf("invalid seed accepted")
				}
			})
		}
	}
}

// readSeed reads a two-value seed file in the `go test fuzz v1` format.
func readSeed(t *testing.T, path string) ([]byte, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a two-value `go test fuzz v1` file", path)
	}
	quoted, ok := strings.CutPrefix(lines[1], "[]byte(")
	if !ok || !strings.HasSuffix(quoted, ")") {
		t.Fatalf("%s: first value is not []byte", path)
	}
	msg, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var limit uint16
	if _, err := fmt.Sscanf(lines[2], "uint16(%d)", &limit); err != nil {
		t.Fatalf("%s: second value: %v", path, err)
	}
	return []byte(msg), int(limit)
}
