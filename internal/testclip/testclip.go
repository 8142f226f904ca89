// Package testclip makes the project's own test video: a moving pattern
// (ffmpeg's testsrc2) with mild sensor-like noise that changes every picture,
// as raw I420 pictures, and decodes H.264 with ffmpeg to check an encoder's
// output. Tests and benchmarks share it so that every figure is measured on
// the same pictures.
//
// It runs Debian's ffmpeg (`make deps`). The pictures are deterministic:
// ffmpeg's noise filter has a fixed seed, so the same Clip gives the same bytes
// every run, and a reference for ffmpeg's ssim filter can be made again from
// Clip.Filter instead of being kept on disk.
//
// Functions are safe for concurrent use; a Reader is used by one goroutine.
package testclip

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// Clip describes a test clip.
type Clip struct {
	Width, Height int
	FPS           int
	Frames        int
	// Noise is the strength of ffmpeg's temporal noise (noise=alls=N:allf=t);
	// 0 means none. Cameras' sensor noise at indoor light is about 8.
	Noise int
}

// HD is the project's 720p30 test clip: 3 s, noise 8.
var HD = Clip{Width: 1280, Height: 720, FPS: 30, Frames: 90, Noise: 8}

// FrameSize is the size of one I420 picture.
func (c Clip) FrameSize() int { return c.Width * c.Height * 3 / 2 }

// Filter is the ffmpeg lavfi source graph that makes the clip's pictures.
func (c Clip) Filter() string {
	f := fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", c.Width, c.Height, c.FPS)
	if c.Noise > 0 {
		f += fmt.Sprintf(",noise=alls=%d:allf=t", c.Noise)
	}
	return f + ",format=yuv420p"
}

// Args are ffmpeg's arguments to write the clip as raw I420 to stdout.
func (c Clip) Args() []string {
	return []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", c.Filter(),
		"-frames:v", strconv.Itoa(c.Frames), "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"}
}

// Command is the shell form of Args, for docs and logs.
func (c Clip) Command() string {
	a := c.Args()
	return "ffmpeg " + strings.Join(a[:6], " ") + " '" + a[6] + "' " + strings.Join(a[7:], " ")
}

func (c Clip) validate() error {
	if c.Width <= 0 || c.Height <= 0 || c.Width%2 != 0 || c.Height%2 != 0 || c.FPS <= 0 || c.Frames <= 0 || c.Noise < 0 {
		return fmt.Errorf("testclip: bad clip %+v: sizes must be even and positive, FPS and Frames positive", c)
	}
	return nil
}

// Reader reads a clip's pictures from a running ffmpeg.
type Reader struct {
	clip Clip
	cmd  *exec.Cmd
	out  io.ReadCloser
	r    *bufio.Reader
	buf  []byte
	n    int
	err  bytes.Buffer
}

// Open starts ffmpeg making c. Close the Reader when done; cancelling ctx ends
// ffmpeg too.
func Open(ctx context.Context, c Clip) (*Reader, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	r := &Reader{clip: c, buf: make([]byte, c.FrameSize())}
	r.cmd = exec.CommandContext(ctx, "ffmpeg", c.Args()...)
	r.cmd.Stderr = &r.err
	var err error
	if r.out, err = r.cmd.StdoutPipe(); err != nil {
		return nil, fmt.Errorf("testclip: failed to pipe ffmpeg: %w", err)
	}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testclip: failed to start ffmpeg (make deps installs it): %w", err)
	}
	r.r = bufio.NewReaderSize(r.out, 1<<20)
	return r, nil
}

// Next returns the next picture, in a buffer reused by the next call, or
// io.EOF after the last one.
func (r *Reader) Next() ([]byte, error) {
	if r.n == r.clip.Frames {
		return nil, io.EOF
	}
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return nil, fmt.Errorf("testclip: failed to read picture %d of %d: %w (ffmpeg: %s)", r.n, r.clip.Frames, err, strings.TrimSpace(r.err.String()))
	}
	r.n++
	return r.buf, nil
}

// Close stops ffmpeg.
func (r *Reader) Close() error {
	r.out.Close()
	err := r.cmd.Wait()
	if r.n == r.clip.Frames && err == nil {
		return nil
	}
	var exit *exec.ExitError
	if r.n < r.clip.Frames && errors.As(err, &exit) {
		return nil // stopped early on purpose: ffmpeg died of the closed pipe
	}
	if err != nil {
		return fmt.Errorf("testclip: ffmpeg: %w (%s)", err, strings.TrimSpace(r.err.String()))
	}
	return nil
}

// DecodedFrames decodes an Annex-B H.264 stream with ffmpeg and returns how
// many pictures it decoded. ffmpeg's own complaints about the stream fail it.
func DecodedFrames(ctx context.Context, h264 []byte) (int, error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-xerror",
		"-f", "h264", "-i", "-", "-f", "framecrc", "-")
	cmd.Stdin = bytes.NewReader(h264)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("testclip: ffmpeg failed to decode %d bytes of H.264: %w (%s)", len(h264), err, strings.TrimSpace(stderr.String()))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		return 0, fmt.Errorf("testclip: ffmpeg decoded %d bytes of H.264 with errors: %s", len(h264), s)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n, nil
}
