package sender

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"
)

// sourceKind says what SENDER_SOURCE names.
type sourceKind int

const (
	sourceDevice sourceKind = iota // camera index or /dev/videoN
	sourceFile                     // video file, looped
	sourceStream                   // rtsp://, rtsps://, http://, https:// URL
	sourceTest                     // generated pattern
)

func (k sourceKind) String() string {
	return [...]string{"camera", "file", "stream", "test"}[k]
}

// sourceSpec is a parsed SENDER_SOURCE.
type sourceSpec struct {
	kind  sourceKind
	index int    // sourceDevice with a numeric index; -1 otherwise
	name  string // device path, file path or URL
}

// streamSchemes are the URL schemes handed to OpenCV's FFmpeg backend.
var streamSchemes = map[string]bool{"rtsp": true, "rtsps": true, "http": true, "https": true}

// parseSource parses SENDER_SOURCE. It decides which sources are start
// errors: a missing file, a directory, an unknown URL scheme. Camera devices
// and stream URLs are not checked here: a camera unplugged at boot or a
// stream server not yet up is retried forever, like a camera lost later.
func parseSource(s string) (sourceSpec, error) {
	switch {
	case s == "":
		return sourceSpec{}, errors.New("empty: want a camera index, /dev/videoN, a file, a URL or test")
	case s == "test":
		return sourceSpec{kind: sourceTest, index: -1}, nil
	case isDigits(s):
		n, err := strconv.Atoi(s)
		if err != nil || n > 1<<16 {
			return sourceSpec{}, fmt.Errorf("camera index %q out of range", s)
		}
		return sourceSpec{kind: sourceDevice, index: n}, nil
	case strings.HasPrefix(s, "/dev/"):
		return sourceSpec{kind: sourceDevice, index: -1, name: s}, nil
	case strings.Contains(s, "://"):
		u, err := url.Parse(s)
		if err != nil {
			return sourceSpec{}, fmt.Errorf("bad URL: %w", err)
		}
		if !streamSchemes[strings.ToLower(u.Scheme)] {
			return sourceSpec{}, fmt.Errorf("URL scheme %q not supported: want rtsp, rtsps, http or https", u.Scheme)
		}
		if u.Host == "" {
			return sourceSpec{}, fmt.Errorf("URL %q has no host", redactURL(s))
		}
		return sourceSpec{kind: sourceStream, index: -1, name: s}, nil
	default:
		fi, err := os.Stat(s)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return sourceSpec{}, fmt.Errorf("video file %q does not exist", s)
			}
			return sourceSpec{}, fmt.Errorf("failed to stat video file: %w", err)
		}
		if fi.IsDir() {
			return sourceSpec{}, fmt.Errorf("%q is a directory, not a video file", s)
		}
		return sourceSpec{kind: sourceFile, index: -1, name: s}, nil
	}
}

// String describes the source for logs, without URL credentials.
func (s sourceSpec) String() string {
	switch {
	case s.kind == sourceTest:
		return "test"
	case s.kind == sourceDevice && s.index >= 0:
		return "camera " + strconv.Itoa(s.index)
	case s.kind == sourceStream:
		return redactURL(s.name)
	default:
		return s.name
	}
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// redactURL hides the password of rtsp://user:pass@host URLs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable URL]"
	}
	return u.Redacted()
}

// frameSource yields frames into a caller's Mat. A frameSource is used by
// one goroutine at a time (the capture goroutine, or a benchmark).
type frameSource interface {
	// Read fills m with the next frame, blocking until the source delivers
	// one (a camera), or until it is due (a file, the test pattern). It
	// returns ctx.Err() when ctx is done while it waits.
	Read(ctx context.Context, m *gocv.Mat) error
	// Close releases the device, file or stream.
	Close() error
}

// errReadFailed is returned when OpenCV delivers no frame: a camera gone,
// a stream ended, a file no longer readable.
var errReadFailed = errors.New("sender: source delivered no frame")

// openSource opens the source spec names. testWidth and fps configure the
// test pattern; fps also paces a file whose frame rate is unknown.
func openSource(spec sourceSpec, testWidth int, fps float64) (frameSource, error) {
	switch spec.kind {
	case sourceTest:
		return newTestPattern(testWidth, fps), nil
	case sourceDevice:
		var vc *gocv.VideoCapture
		var err error
		if spec.index >= 0 {
			vc, err = gocv.VideoCaptureDevice(spec.index)
		} else {
			// By path, so /dev/v4l/by-id/... names work too.
			vc, err = gocv.VideoCaptureFileWithAPI(spec.name, gocv.VideoCaptureV4L2)
		}
		if err != nil || !vc.IsOpened() {
			closeCapture(vc)
			return nil, fmt.Errorf("failed to open %s", spec)
		}
		return &videoSource{vc: vc, spec: spec}, nil
	case sourceStream:
		vc, err := gocv.VideoCaptureFile(spec.name)
		if err != nil || !vc.IsOpened() {
			closeCapture(vc)
			return nil, fmt.Errorf("failed to open stream %s", spec)
		}
		return &videoSource{vc: vc, spec: spec}, nil
	case sourceFile:
		vc, err := openFile(spec.name)
		if err != nil {
			return nil, err
		}
		rate := vc.Get(gocv.VideoCaptureFPS)
		if !(rate > 0 && rate <= 240) { // unknown (0) or NaN
			rate = fps
		}
		return &videoSource{vc: vc, spec: spec, loop: true, fileFPS: rate, pace: newPacer(rate)}, nil
	}
	return nil, fmt.Errorf("unknown source kind %d", spec.kind)
}

func openFile(path string) (*gocv.VideoCapture, error) {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil || !vc.IsOpened() {
		closeCapture(vc)
		return nil, fmt.Errorf("failed to open video file %q: OpenCV cannot read it", path)
	}
	return vc, nil
}

// closeCapture closes vc if gocv allocated one: its constructors return
// the VideoCapture together with the error.
func closeCapture(vc *gocv.VideoCapture) {
	if vc != nil {
		vc.Close()
	}
}

// probeFile opens a video file and decodes its first frame, so that a file
// OpenCV cannot read fails at start rather than in the capture loop.
func probeFile(path string) (width, height int, fps float64, err error) {
	vc, err := openFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	if !vc.Read(&m) || m.Empty() {
		return 0, 0, 0, fmt.Errorf("failed to decode a frame of video file %q", path)
	}
	return m.Cols(), m.Rows(), vc.Get(gocv.VideoCaptureFPS), nil
}

// videoSource reads an OpenCV VideoCapture: a camera, a stream, or a file
// that loops at its end and is paced at its own frame rate (files decode
// much faster than real time; cameras and streams pace themselves).
type videoSource struct {
	vc      *gocv.VideoCapture
	spec    sourceSpec
	loop    bool
	fileFPS float64
	pace    *pacer // nil for cameras and streams
}

func (s *videoSource) Read(ctx context.Context, m *gocv.Mat) error {
	if s.pace != nil {
		if err := s.pace.wait(ctx); err != nil {
			return err
		}
	}
	if s.vc.Read(m) && !m.Empty() {
		return nil
	}
	if !s.loop {
		return errReadFailed
	}
	// End of file: rewind, or reopen when the container cannot seek.
	s.vc.Set(gocv.VideoCapturePosFrames, 0)
	if s.vc.Read(m) && !m.Empty() {
		return nil
	}
	s.vc.Close()
	s.vc = nil
	vc, err := openFile(s.spec.name)
	if err != nil {
		return err
	}
	s.vc = vc
	if s.vc.Read(m) && !m.Empty() {
		return nil
	}
	return errReadFailed
}

func (s *videoSource) Close() error {
	closeCapture(s.vc)
	s.vc = nil
	return nil
}

// pacer spaces events at least interval apart. When the caller falls behind
// by more than one interval, it restarts the schedule instead of bursting.
// A pacer is used by one goroutine.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(fps float64) *pacer {
	return &pacer{interval: time.Duration(float64(time.Second) / fps)}
}

// wait blocks until the next event is due or ctx is done, then counts
// the event.
func (p *pacer) wait(ctx context.Context) error {
	if err := p.due(ctx); err != nil {
		return err
	}
	p.advance()
	return nil
}

// due blocks until the next event is due or ctx is done, without counting
// an event: a caller that then finds nothing to do calls no advance.
func (p *pacer) due(ctx context.Context) error {
	d := time.Until(p.next)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// advance counts an event that happened now and schedules the next one.
func (p *pacer) advance() {
	now := time.Now()
	if p.next.IsZero() || now.Sub(p.next) > p.interval {
		p.next = now
	}
	p.next = p.next.Add(p.interval)
}
