// Command codeccompare measures what the H.264 path saves against JPEG on the
// project's own test clip (internal/testclip: testsrc2 with temporal noise 8,
// 1280×720 at 30 fps): bytes per second of internal/h264enc at several
// settings, of JPEG quality 80 encoded as the sender does it (OpenCV through
// gocv, IMEncodeWithParams with IMWRITE_JPEG_QUALITY 80, from the BGR picture
// a capture gives), and optionally of ffmpeg's libx264, each with picture
// quality from ffmpeg's ssim filter against the source pictures. It prints a
// Markdown section (docs/benchmarks.md "H.264 vs JPEG"; make bench runs it as
// scenario S9).
//
//	go run ./internal/h264enc/codeccompare -seconds 10
//
// It runs on one goroutine, encoders one after another on the same picture,
// and reports each encoder's CPU time (the thread's own, getrusage
// RUSAGE_THREAD) per picture.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gocv.io/x/gocv"

	"github.com/framecast/framecast/internal/h264enc"
	"github.com/framecast/framecast/internal/testclip"
)

func main() {
	seconds := flag.Int("seconds", 10, "clip length")
	width := flag.Int("width", 1280, "clip width")
	height := flag.Int("height", 720, "clip height")
	fps := flag.Int("fps", 30, "clip frame rate")
	noise := flag.Int("noise", 8, "temporal noise strength")
	bitrates := flag.String("bitrates", "1000,1500,2500,4000", "OpenH264 bitrate-mode settings (kbit/s); the default's row is marked")
	quality := flag.Int("quality-kbps", h264enc.DefaultBitrateKbps, "OpenH264 quality-mode row at this target (0: none)")
	x264 := flag.String("x264", "2500", "libx264 rows at these bitrates (kbit/s; empty: none), through ffmpeg")
	jpegQ := flag.Int("jpeg-quality", 80, "JPEG quality (the sender's default)")
	dir := flag.String("dir", "", "where to keep the encoded streams (default: a temporary folder, removed)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := testclip.Clip{Width: *width, Height: *height, FPS: *fps, Frames: *seconds * *fps, Noise: *noise}
	out, err := run(ctx, c, config{bitrates: ints(*bitrates), quality: *quality, x264: ints(*x264), jpegQ: *jpegQ, dir: *dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "codeccompare:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}

type config struct {
	bitrates []int
	quality  int
	x264     []int
	jpegQ    int
	dir      string
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "codeccompare: bad number %q\n", f)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

// row is one encoding of the clip.
type row struct {
	name, settings string
	file           string
	format         string // ffmpeg demuxer of file
	bytes          int64
	cpu            time.Duration // encoder's CPU over the clip
	cpuNote        string
	keys           int   // IDR pictures (OpenH264 rows)
	keyBytes       int64 // their bytes
	maxAU          int   // largest access unit
	ssimY, ssimAll float64
	ssimClean      float64 // All, against the clip without noise
	isDefault      bool
	isJPEG         bool
}

// encoder is one of the clip's encoders in the single pass over its pictures.
type encoder struct {
	row    *row
	w      *bufio.Writer
	f      *os.File
	encode func(pic []byte) ([]byte, error)
	close  func()
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(ctx context.Context, c testclip.Clip, cfg config) (string, error) {
	runtime.LockOSThread() // RUSAGE_THREAD measures this goroutine's thread
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "codeccompare-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var encs []*encoder
	defer func() {
		for _, e := range encs {
			e.close()
		}
	}()
	add := func(r *row, encode func([]byte) ([]byte, error), closeFn func()) error {
		f, err := os.Create(r.file)
		if err != nil {
			return err
		}
		encs = append(encs, &encoder{row: r, f: f, w: bufio.NewWriterSize(f, 1<<20), encode: encode, close: func() { closeFn(); f.Close() }})
		return nil
	}
	h264Row := func(kbps int, rc h264enc.RateControl, mode string) error {
		e, err := h264enc.New(h264enc.Options{Width: c.Width, Height: c.Height, FPS: float64(c.FPS), BitrateKbps: kbps, RateControl: rc})
		if err != nil {
			return err
		}
		r := &row{name: "H.264 (OpenH264)", settings: fmt.Sprintf("%s mode, %d kbit/s, IDR every 2 s", mode, kbps),
			file: filepath.Join(dir, fmt.Sprintf("openh264-%s-%d.h264", mode, kbps)), format: "h264",
			isDefault: rc == h264enc.RateBitrate && kbps == h264enc.DefaultBitrate(c.Width, c.Height, float64(c.FPS))}
		return add(r, func(pic []byte) ([]byte, error) {
			au, key, err := e.Encode(pic, false)
			if key {
				r.keys++
				r.keyBytes += int64(len(au))
			}
			r.maxAU = max(r.maxAU, len(au))
			return au, err
		}, func() { e.Close() })
	}
	for _, kbps := range cfg.bitrates {
		if err := h264Row(kbps, h264enc.RateBitrate, "bitrate"); err != nil {
			return "", err
		}
	}
	if cfg.quality > 0 {
		if err := h264Row(cfg.quality, h264enc.RateQuality, "quality"); err != nil {
			return "", err
		}
	}
	// JPEG as the sender makes it: a BGR Mat (what OpenCV's capture returns),
	// IMEncodeWithParams at the quality. The I420→BGR conversion is not
	// counted in the JPEG's CPU: a capture hands the sender BGR.
	yuv := gocv.NewMat()
	bgr := gocv.NewMat()
	defer yuv.Close()
	defer bgr.Close()
	params := []int{gocv.IMWriteJpegQuality, cfg.jpegQ}
	jr := &row{name: "JPEG (OpenCV 4.6 libjpeg, as the sender)", settings: fmt.Sprintf("quality %d", cfg.jpegQ),
		file: filepath.Join(dir, "jpeg.mjpeg"), format: "mjpeg", isJPEG: true}
	var jpegBuf []byte
	if err := add(jr, func(pic []byte) ([]byte, error) {
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, bgr, params)
		if err != nil {
			return nil, err
		}
		jpegBuf = append(jpegBuf[:0], buf.GetBytes()...)
		buf.Close()
		jr.maxAU = max(jr.maxAU, len(jpegBuf))
		return jpegBuf, nil
	}, func() {}); err != nil {
		return "", err
	}

	r, err := testclip.Open(ctx, c)
	if err != nil {
		return "", err
	}
	defer r.Close()
	for n := 0; ; n++ {
		pic, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		m, err := gocv.NewMatFromBytes(c.Height*3/2, c.Width, gocv.MatTypeCV8UC1, pic)
		if err != nil {
			return "", err
		}
		gocv.CvtColor(m, &bgr, gocv.ColorYUVToBGRIYUV)
		m.Close()
		for _, e := range encs {
			t0 := threadCPU()
			b, err := e.encode(pic)
			e.row.cpu += threadCPU() - t0
			if err != nil {
				return "", fmt.Errorf("%s %s, picture %d: %w", e.row.name, e.row.settings, n, err)
			}
			e.row.bytes += int64(len(b))
			if _, err := e.w.Write(b); err != nil {
				return "", err
			}
		}
	}
	var rows []*row
	for _, e := range encs {
		if err := e.w.Flush(); err != nil {
			return "", err
		}
		rows = append(rows, e.row)
	}
	var commands []string
	for _, kbps := range cfg.x264 {
		xr, cmds, err := runX264(ctx, c, dir, kbps)
		if err != nil {
			return "", err
		}
		rows = append(rows, xr)
		commands = append(commands, cmds...)
	}
	clean := c
	clean.Noise = 0
	for _, r := range rows {
		cmd, err := ssim(ctx, c, r, c, &r.ssimY, &r.ssimAll)
		if err != nil {
			return "", err
		}
		if r == rows[0] || r.isJPEG {
			commands = append(commands, cmd)
		}
		var y float64
		if cmd, err = ssim(ctx, c, r, clean, &y, &r.ssimClean); err != nil {
			return "", err
		}
		if r == rows[0] {
			commands = append(commands, cmd+"   # against the scene without noise")
		}
	}
	// What a perfect denoiser would score: the clean clip against the source.
	perfect := &row{name: "the scene without noise (no encoder)", file: "", format: "lavfi"}
	if _, err := ssim(ctx, c, perfect, c, &perfect.ssimY, &perfect.ssimAll); err != nil {
		return "", err
	}
	perfect.ssimClean = 1
	rows = append(rows, perfect)
	return markdown(c, rows, commands), nil
}

var benchUtime = regexp.MustCompile(`bench: utime=([\d.]+)s stime=([\d.]+)s`)

// ffmpegCPU runs ffmpeg with -benchmark and returns its user+system CPU.
func ffmpegCPU(ctx context.Context, args []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-nostats", "-benchmark"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ffmpeg %s: %w: %s", strings.Join(args, " "), err, lastLines(out))
	}
	m := benchUtime.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ffmpeg printed no bench line: %s", lastLines(out))
	}
	u, _ := strconv.ParseFloat(string(m[1]), 64)
	s, _ := strconv.ParseFloat(string(m[2]), 64)
	return time.Duration((u + s) * float64(time.Second)), nil
}

// runX264 encodes the clip with ffmpeg's libx264 at low-latency settings on
// one thread; its CPU is ffmpeg's minus a run that only makes the clip.
func runX264(ctx context.Context, c testclip.Clip, dir string, kbps int) (*row, []string, error) {
	src := []string{"-f", "lavfi", "-i", c.Filter(), "-frames:v", strconv.Itoa(c.Frames)}
	file := filepath.Join(dir, fmt.Sprintf("x264-%d.h264", kbps))
	enc := append(append([]string{}, src...), "-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-tune", "zerolatency",
		"-profile:v", "baseline", "-b:v", fmt.Sprintf("%dk", kbps), "-maxrate", fmt.Sprintf("%dk", kbps),
		"-bufsize", fmt.Sprintf("%dk", kbps/2), "-g", strconv.Itoa(2*c.FPS), "-f", "h264", "-y", file)
	gen := append(append([]string{}, src...), "-f", "null", "-")
	total, err := ffmpegCPU(ctx, enc)
	if err != nil {
		return nil, nil, err
	}
	base, err := ffmpegCPU(ctx, gen)
	if err != nil {
		return nil, nil, err
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, nil, err
	}
	r := &row{name: "H.264 (libx264 via ffmpeg)", settings: fmt.Sprintf("veryfast, zerolatency, baseline, %d kbit/s, 1 thread", kbps),
		file: file, format: "h264", bytes: st.Size(), cpu: max(0, total-base), cpuNote: " (ffmpeg's CPU less making the clip)"}
	q := func(a []string) string { return "ffmpeg " + shellJoin(a) }
	return r, []string{q(enc), q(gen) + "   # subtracted: making the clip"}, nil
}

var ssimLine = regexp.MustCompile(`SSIM Y:([\d.]+) .* All:([\d.]+)`)

// ssim compares r's file, decoded by ffmpeg (or, for format lavfi, the clip
// without noise), with ref made again from its filter (deterministic), in
// limited-range I420 (JPEG decodes to full range), and stores SSIM Y and All.
func ssim(ctx context.Context, c testclip.Clip, r *row, ref testclip.Clip, y, all *float64) (string, error) {
	in := []string{"-f", r.format, "-i", r.file}
	if r.format == "lavfi" {
		clean := c
		clean.Noise = 0
		in = []string{"-f", "lavfi", "-i", clean.Filter()}
	}
	args := append(append([]string{"-hide_banner", "-nostats"}, in...),
		"-f", "lavfi", "-i", ref.Filter(),
		"-lavfi", fmt.Sprintf("[0:v]trim=end_frame=%[1]d,scale=out_range=tv,format=yuv420p[d];[1:v]trim=end_frame=%[1]d[s];[d][s]ssim", c.Frames),
		"-f", "null", "-")
	out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ssim of %s: %w: %s", r.file, err, lastLines(out))
	}
	m := ssimLine.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("ssim of %s: no SSIM line: %s", r.file, lastLines(out))
	}
	*y, _ = strconv.ParseFloat(string(m[1]), 64)
	*all, _ = strconv.ParseFloat(string(m[2]), 64)
	return "ffmpeg " + shellJoin(args), nil
}

func shellJoin(a []string) string {
	q := make([]string, len(a))
	for i, s := range a {
		if strings.ContainsAny(s, " ;[]=,:'") {
			s = "'" + s + "'"
		}
		q[i] = s
	}
	return strings.Join(q, " ")
}

func lastLines(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return s
}

func markdown(c testclip.Clip, rows []*row, commands []string) string {
	var s strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&s, format, args...) }
	secs := float64(c.Frames) / float64(c.FPS)
	var jpeg *row
	for _, r := range rows {
		if r.isJPEG {
			jpeg = r
		}
	}
	p("The project's test clip, %d×%d at %d fps, %.0f s (%d pictures): `%s`. ", c.Width, c.Height, c.FPS, secs, c.Frames, c.Command())
	p("Every encoder gets the same pictures; SSIM is ffmpeg's `ssim` filter between the decoded stream and the clip made again ")
	p("(the noise filter's seed is fixed), in limited-range I420. Target: H.264 at ≥ 4× fewer bytes than JPEG q80 with SSIM (All) ")
	p("no more than 0.03 below JPEG's. CPU is each encoder's own thread time per picture, on one core, in a single pass ")
	p("(`go run ./internal/h264enc/codeccompare -seconds %.0f`).\n\n", secs)
	p("| encoder | settings | Mbit/s | KB/picture (IDR / largest) | JPEG bytes ÷ these | SSIM Y | SSIM All | All − JPEG's | SSIM All vs the scene without noise | CPU/picture | meets target |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.format == "lavfi" {
			p("| %s | | | | | %.4f | %.4f | | %.4f | | |\n", r.name, r.ssimY, r.ssimAll, r.ssimClean)
			continue
		}
		sizes := fmt.Sprintf("%.1f", float64(r.bytes)/float64(c.Frames)/1000)
		if r.keys > 0 {
			sizes += fmt.Sprintf(" (%.0f / %.0f)", float64(r.keyBytes)/float64(r.keys)/1000, float64(r.maxAU)/1000)
		} else if r.maxAU > 0 {
			sizes += fmt.Sprintf(" (– / %.0f)", float64(r.maxAU)/1000)
		}
		ratio, delta, meets := "1.00×", "–", "–"
		if !r.isJPEG && jpeg != nil {
			x := float64(jpeg.bytes) / float64(r.bytes)
			d := r.ssimAll - jpeg.ssimAll
			ratio, delta = fmt.Sprintf("%.2f×", x), fmt.Sprintf("%+.4f", d)
			meets = "no"
			if x >= 4 && d >= -0.03 {
				meets = "yes"
			}
		}
		name := r.name
		if r.isDefault {
			name += " **default**"
		}
		p("| %s | %s | %.2f | %s | %s | %.4f | %.4f | %s | %.4f | %.2f ms%s | %s |\n", name, r.settings,
			float64(r.bytes)*8/secs/1e6, sizes, ratio, r.ssimY, r.ssimAll, delta, r.ssimClean,
			float64(r.cpu)/float64(c.Frames)/1e6, r.cpuNote, meets)
	}
	p("\nCommands (besides the Go program's own encodes; the SSIM command is the same for every stream with its file and demuxer):\n\n```sh\n")
	for _, cmd := range commands {
		p("%s\n", cmd)
	}
	p("```\n")
	return s.String()
}
