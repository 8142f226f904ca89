package e2e_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// Browser tests of the viewer page's H.264 path (issue 14): real H.264
// made by ffmpeg, relayed by an in-process gateway (lbGateway), decoded
// by Chromium's WebCodecs onto the page's canvas, and the page's JPEG
// fallbacks. Helpers are prefixed "hb".

// hbRoom publishes, on room of the gateway at base, what a sender in h264
// mode does: a real H.264 clip at 30 fps (a keyframe every second) and,
// on a second publisher connection, the JPEG main layer at 5 fps, with the
// H.264 stream's sequence numbers (one picture, one number, as cmd/sender
// numbers them).
func hbRoom(t *testing.T, base, room string) *testenv.H264Publisher {
	t.Helper()
	clip := testenv.MakeH264Clip(t, 320, 240, 90, 30)
	pub := testenv.Dial(t, hbPublishURL(base, room), nil).PublishH264(t, 33*time.Millisecond, room, clip)
	hbJPEGLayer(t, base, room, func() uint64 { return max(pub.Seq(), 1) })
	return pub
}

func hbPublishURL(base, room string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/ws/video/" + room + "/?role=publish"
}

// hbJPEGLayer publishes room's JPEG main layer every 200 ms on a publisher
// connection of its own: two 320×240 pictures in turn (so a canvas that
// draws them changes), numbered seq().
func hbJPEGLayer(t *testing.T, base, room string, seq func() uint64) {
	t.Helper()
	c := testenv.Dial(t, hbPublishURL(base, room), nil)
	c.ReadUntilClosed()
	jpegs := [][]byte{testenv.JPEG(t, 320, 240, 10, 0), testenv.JPEG(t, 320, 240, 60, 0)}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		var msg []byte
		for i := 0; ; i++ {
			msg = frames.AppendBinary(msg[:0], seq(), time.Now(), jpegs[i%2])
			if c.SendBinary(msg) != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// hbOpen starts a gateway and a browser whose documents run initJS (if
// any) first, lets publish fill room, and opens room's viewer page.
func hbOpen(t *testing.T, room, initJS string, publish func(base string)) (*gateway.Server, *browser) {
	t.Helper()
	testenv.RequireTool(t, "chromium")
	srv, base := lbGateway(t, nil)
	publish(base)
	b := startBrowser(t)
	if initJS != "" {
		hbInitScript(t, b, initJS)
	}
	b.Navigate(t, base+"/video/"+room+"/")
	return srv, b
}

// hbPlaysJPEG waits for the page to draw JPEG pictures that change, and
// returns its state then.
func hbPlaysJPEG(t *testing.T, b *browser, first func(hbViewer) error) hbViewer {
	t.Helper()
	v, s := hbWait(t, b, "JPEG drawn", func(v hbViewer, s viewerState) error {
		if err := first(v); err != nil {
			return err
		}
		return hbShows("jpeg", hbViewer{}, viewerState{})(v, s)
	})
	got, _ := hbWait(t, b, "more JPEG pictures, a changing canvas", hbShows("jpeg", v, s))
	return got
}

// hbViewer is the viewer page's codec state (window.framecast).
type hbViewer struct {
	Want         string     `json:"want"`
	Codec        string     `json:"codec"`
	H264Off      string     `json:"h264Off"`
	WebCodecs    bool       `json:"webCodecs"`
	Decoded      int        `json:"decoded"`
	Drawn        int        `json:"drawn"`
	Configures   int        `json:"configures"`
	Errors       int        `json:"decoderErrors"`
	Fallbacks    int        `json:"fallbacks"`
	Skipped      int        `json:"skipped"`
	Dropped      int        `json:"dropped"` // deltas the page dropped (part of Skipped)
	FirstDrawnMs int        `json:"firstDrawnMs"`
	FirstSeq     uint64     `json:"firstSeq"`
	LastError    string     `json:"lastDecoderError"`
	Connects     int        `json:"connects"`
	Supported    *hbSupport `json:"supported"`
	GatewayCodec string     `json:"gatewayCodec"`
	Overlay      string     `json:"overlay"`
}

// hbSupport is the page's last isConfigSupported question and answer.
type hbSupport struct {
	Codec       string `json:"codec"`
	CodedWidth  int    `json:"codedWidth"`
	CodedHeight int    `json:"codedHeight"`
	Supported   bool   `json:"supported"`
}

func (v hbViewer) String() string {
	return fmt.Sprintf("want=%s codec=%s h264Off=%q webCodecs=%v decoded=%d drawn=%d configures=%d errors=%d fallbacks=%d skipped=%d (dropped here %d) connects=%d supported=%+v gateway codec=%q overlay=%q",
		v.Want, v.Codec, v.H264Off, v.WebCodecs, v.Decoded, v.Drawn, v.Configures, v.Errors, v.Fallbacks, v.Skipped, v.Dropped, v.Connects, v.Supported, v.GatewayCodec, v.Overlay)
}

const hbViewerJS = `(() => {
	const f = window.framecast || {};
	return {
		want: f.want || "", codec: f.codec || "", h264Off: f.h264Off || "", webCodecs: !!f.webCodecs,
		decoded: f.decoded || 0, drawn: f.drawn || 0, configures: f.configures || 0,
		decoderErrors: f.decoderErrors || 0, fallbacks: f.fallbacks || 0, connects: f.connects || 0,
		skipped: f.skipped || 0, dropped: f.dropped || 0,
		firstDrawnMs: f.firstDrawnMs || 0, firstSeq: f.firstSeq || 0, lastDecoderError: f.lastDecoderError || "",
		supported: f.supported || null,
		gatewayCodec: (f.gatewayLayer && f.gatewayLayer.codec) || "",
		overlay: document.getElementById("overlay").textContent,
	};
})()`

// hbOverlayCodec captures the codec the overlay shows.
var hbOverlayCodec = regexp.MustCompile(`^fps \d+ · latency (?:\d+ ms|–) · skipped \d+ · (jpeg|h264) · layer \d+ \d+×\d+ · [\d.]+ kB/s$`)

// hbWait polls the page's codec state and its canvas (viewerStateJS's
// pixel hash) until cond accepts them.
func hbWait(t *testing.T, b *browser, what string, cond func(hbViewer, viewerState) error) (hbViewer, viewerState) {
	t.Helper()
	var gotV hbViewer
	var gotS viewerState
	testenv.WaitFor(t, lbWait, what, func() error {
		v, err := evaluate[hbViewer](b, hbViewerJS)
		if err != nil {
			return fmt.Errorf("failed to read the page: %w", err)
		}
		s, err := evaluate[viewerState](b, viewerStateJS)
		if err != nil {
			return fmt.Errorf("failed to read the canvas: %w", err)
		}
		if err := cond(v, s); err != nil {
			return fmt.Errorf("%w; page: %s; canvas: %s", err, v, s)
		}
		gotV, gotS = v, s
		return nil
	})
	return gotV, gotS
}

// hbShows returns a condition: the page receives and shows codec (want,
// codec, overlay, the gateway's layer message agree) and has drawn more
// than after, with a canvas whose pixels differ from after's.
func hbShows(codec string, after hbViewer, afterPixels viewerState) func(hbViewer, viewerState) error {
	return func(v hbViewer, s viewerState) error {
		m := hbOverlayCodec.FindStringSubmatch(v.Overlay)
		switch {
		case m == nil || m[1] != codec:
			return fmt.Errorf("the overlay does not show %s", codec)
		case v.Want != codec || v.Codec != codec:
			return fmt.Errorf("the page wants %s and receives %s, want %s", v.Want, v.Codec, codec)
		case codec == "h264" && v.GatewayCodec != "h264":
			return fmt.Errorf("the gateway's layer message says codec %q", v.GatewayCodec)
		case codec == "h264" && v.Decoded <= after.Decoded+5:
			return fmt.Errorf("decoded %d pictures (was %d)", v.Decoded, after.Decoded)
		case v.Drawn <= after.Drawn+2:
			return fmt.Errorf("drew %d pictures (was %d)", v.Drawn, after.Drawn)
		case !s.Opaque || s.PixelHash == afterPixels.PixelHash:
			return fmt.Errorf("the canvas did not change (opaque %v, hash %08x)", s.Opaque, s.PixelHash)
		}
		return nil
	}
}

// hbInitScript makes Chromium run js in every document the tab opens from
// now on, before the page's own scripts.
func hbInitScript(t *testing.T, b *browser, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
		return err
	}))
	if err != nil {
		t.Fatalf("failed to add an init script: %v", err)
	}
}

// TestH264ViewerPageDecodes: a room with H.264 and a JPEG layer, opened on
// http://127.0.0.1 and http://localhost (secure contexts for Chromium): the
// page asks for H.264, WebCodecs says it can decode the stream, and the
// page decodes and draws it (its decoded counter rises, the canvas
// changes, the overlay says h264), on one connection.
func TestH264ViewerPageDecodes(t *testing.T) {
	var pub *testenv.H264Publisher
	var base string
	_, b := hbOpen(t, "h264cam", "", func(u string) { base, pub = u, hbRoom(t, u, "h264cam") })
	if ok, err := evaluate[bool](b, "window.isSecureContext && typeof VideoDecoder === 'function'"); !ok {
		t.Fatalf("%s is not a secure context with WebCodecs (%v)", base, err)
	}
	for _, codec := range []string{"avc1.42E01F", "avc1.640028"} {
		ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`VideoDecoder.isConfigSupported({codec: "`+codec+`", codedWidth: 1280, codedHeight: 720}).then(r => r.supported)`, chromedp.EvalAwaitPromise))
		cancel()
		t.Logf("isConfigSupported(%s, 1280×720) = %v (%v)", codec, ok, err)
	}

	first, firstPixels := hbWait(t, b, "H.264 decoded and drawn", hbShows("h264", hbViewer{}, viewerState{}))
	if first.Supported == nil || !first.Supported.Supported {
		t.Fatalf("the page decodes without a yes from isConfigSupported: %s", first)
	}
	t.Logf("the page's isConfigSupported(%s, %d×%d) = %v", first.Supported.Codec,
		first.Supported.CodedWidth, first.Supported.CodedHeight, first.Supported.Supported)
	// Two more keyframes, each after its configuration: repeats of the same
	// bytes, which must not reconfigure the decoder.
	keys := pub.Keys.Load()
	got, _ := hbWait(t, b, "more H.264 pictures over two more keyframes, a changing canvas", func(v hbViewer, s viewerState) error {
		if n := pub.Keys.Load(); n < keys+2 {
			return fmt.Errorf("%d keyframes sent since, want 2", n-keys)
		}
		return hbShows("h264", first, firstPixels)(v, s)
	})
	t.Logf("H.264 page: %s", got)
	if got.Connects != 1 || got.Errors != 0 || got.Fallbacks != 0 {
		t.Errorf("connects %d, decoder errors %d, fallbacks %d: want 1, 0, 0", got.Connects, got.Errors, got.Fallbacks)
	}
	if got.Configures != 1 {
		t.Errorf("the decoder was configured %d times over %d keyframes, want once", got.Configures, pub.Keys.Load())
	}
	b.RequireCleanConsole(t)

	// localhost is a secure context too.
	b.Navigate(t, strings.Replace(base, "127.0.0.1", "localhost", 1)+"/video/h264cam/")
	hbWait(t, b, "H.264 on localhost", hbShows("h264", hbViewer{}, viewerState{}))
}

// TestH264ViewerPageWithoutWebCodecs: where VideoDecoder does not exist
// (a page on plain http from another host; here an init script deletes
// it), the page of an H.264 room never asks for H.264 and draws the JPEG
// layer.
func TestH264ViewerPageWithoutWebCodecs(t *testing.T) {
	srv, b := hbOpen(t, "h264cam", "delete window.VideoDecoder;", func(base string) { hbRoom(t, base, "h264cam") })
	got := hbPlaysJPEG(t, b, func(hbViewer) error { return nil })
	t.Logf("page without WebCodecs: %s", got)
	if got.WebCodecs || !strings.Contains(got.H264Off, "WebCodecs") || got.Decoded != 0 {
		t.Errorf("want no WebCodecs, the reason shown, nothing decoded: %s", got)
	}
	if on := lbViewersOn(srv, "h264cam"); len(on) != 1 || on[0] != 1 {
		t.Errorf("the hub's viewers of h264cam's JPEG layers: %v, want one on layer 0", on)
	}
	b.RequireCleanConsole(t)
}

// TestH264ViewerPageFallsBackWhenUnsupported: a browser whose WebCodecs
// says no to the stream's configuration (an init script makes
// isConfigSupported answer so) starts on H.264, then goes to JPEG with a
// select on the same connection, and draws JPEG.
func TestH264ViewerPageFallsBackWhenUnsupported(t *testing.T) {
	_, b := hbOpen(t, "h264cam", `VideoDecoder.isConfigSupported = async (c) => ({supported: false, config: c});`,
		func(base string) { hbRoom(t, base, "h264cam") })
	got := hbPlaysJPEG(t, b, func(v hbViewer) error {
		if v.Fallbacks != 1 || !strings.Contains(v.H264Off, "cannot decode avc1.") {
			return fmt.Errorf("no fall back yet")
		}
		return nil
	})
	t.Logf("page after the fall back: %s", got)
	if got.Connects != 1 || got.Decoded != 0 {
		t.Errorf("connects %d, decoded %d: want 1 connection (a select, not a reconnect) and nothing decoded", got.Connects, got.Decoded)
	}
	b.RequireCleanConsole(t)
}

// TestH264ViewerPageJPEGOnlyRoom: with WebCodecs available, a room with no
// H.264 plays JPEG as before and the page never asks for H.264.
func TestH264ViewerPageJPEGOnlyRoom(t *testing.T) {
	var n atomic.Uint64
	srv, b := hbOpen(t, "solo", "", func(base string) { hbJPEGLayer(t, base, "solo", func() uint64 { return n.Add(1) }) })
	got := hbPlaysJPEG(t, b, func(hbViewer) error { return nil })
	t.Logf("JPEG-only room: %s", got)
	if !got.WebCodecs || got.H264Off != "" || got.Connects != 1 || got.Skipped != 0 {
		t.Errorf("want WebCodecs available, H.264 not ruled out, one connection, nothing skipped: %s", got)
	}
	if on := lbViewersOn(srv, "solo"); len(on) != 1 || on[0] != 1 {
		t.Errorf("the hub's viewers of solo: %v, want one on layer 0", on)
	}
	b.RequireCleanConsole(t)
}

// hbFailDecodes makes VideoDecoder.decode throw while window.framecastFail
// is above 0, counting it down: an injected decoder error.
const hbFailDecodes = `(() => {
	const decode = VideoDecoder.prototype.decode;
	window.framecastFail = 0;
	VideoDecoder.prototype.decode = function (chunk) {
		if (window.framecastFail > 0) {
			window.framecastFail--;
			throw new DOMException("injected decode failure", "EncodingError");
		}
		return decode.call(this, chunk);
	};
})();`

// TestH264ViewerPageDecoderErrors: a decoder error makes the page wait for
// the next keyframe on a new decoder, and H.264 carries on; a second
// error within 10 s makes it fall back to JPEG on the same connection.
func TestH264ViewerPageDecoderErrors(t *testing.T) {
	_, b := hbOpen(t, "h264cam", hbFailDecodes, func(base string) { hbRoom(t, base, "h264cam") })
	first, firstPixels := hbWait(t, b, "H.264 decoded and drawn", hbShows("h264", hbViewer{}, viewerState{}))
	if _, err := evaluate[int](b, "window.framecastFail = 1"); err != nil {
		t.Fatal(err)
	}
	after, afterPixels := hbWait(t, b, "H.264 again after a decoder error", func(v hbViewer, s viewerState) error {
		if v.Errors != 1 || v.Configures != first.Configures+1 {
			return fmt.Errorf("%d decoder errors, %d configures (were %d), want 1 error and a new decoder", v.Errors, v.Configures, first.Configures)
		}
		return hbShows("h264", first, firstPixels)(v, s)
	})
	t.Logf("after one decoder error (%q): %s", after.LastError, after)
	if _, err := evaluate[int](b, "window.framecastFail = 1"); err != nil {
		t.Fatal(err)
	}
	got := hbPlaysJPEG(t, b, func(v hbViewer) error {
		if v.Errors != 2 || v.Fallbacks != 1 || !strings.Contains(v.H264Off, "decoder errors") {
			return fmt.Errorf("no fall back after a second error yet")
		}
		return nil
	})
	t.Logf("after a second decoder error: %s", got)
	if got.Connects != 1 || got.Decoded > after.Decoded+30 || afterPixels.PixelHash == 0 {
		t.Errorf("connects %d (want 1), decoded %d (was %d)", got.Connects, got.Decoded, after.Decoded)
	}
	b.RequireCleanConsole(t)
}

// TestH264ViewerPageJoinsMidGroup: a page that opens in the middle of a
// group of pictures decodes from that group's keyframe, which the gateway
// hands it at once, rather than waiting for the next one, and skips
// nothing.
func TestH264ViewerPageJoinsMidGroup(t *testing.T) {
	testenv.RequireTool(t, "chromium")
	_, base := lbGateway(t, nil)
	pub := hbRoom(t, base, "h264cam")
	b := startBrowser(t)
	// Keyframes are pictures 1, 31, 61...: open a third into a group after
	// the first.
	testenv.WaitFor(t, lbWait, "the publisher a third into a group", func() error {
		if n := pub.Seq(); n < 30 || n%30 < 8 || n%30 > 14 {
			return fmt.Errorf("at picture %d", n)
		}
		return nil
	})
	seqAtOpen := pub.Seq()
	b.Navigate(t, base+"/video/h264cam/")
	got, _ := hbWait(t, b, "H.264 decoded and drawn", hbShows("h264", hbViewer{}, viewerState{}))
	t.Logf("opened at picture %d: first decoded picture %d, drawn %d ms after navigation began; %s", seqAtOpen, got.FirstSeq, got.FirstDrawnMs, got)
	if got.FirstSeq > seqAtOpen || got.FirstSeq+30 <= seqAtOpen || got.FirstSeq%30 != 1 {
		t.Errorf("the first picture decoded is %d, want the keyframe of the group open at %d", got.FirstSeq, seqAtOpen)
	}
	if got.Skipped != 0 {
		t.Errorf("skipped %d pictures, want none", got.Skipped)
	}
	b.RequireCleanConsole(t)
}

// TestH264ViewerPagePicksUpLaterH264: a page that opened on a JPEG-only
// room switches to H.264 on the same connection (a select) once the
// room starts sending it, found by its /api/rooms check (after 5 s).
func TestH264ViewerPagePicksUpLaterH264(t *testing.T) {
	var seq atomic.Uint64
	var base string
	_, b := hbOpen(t, "late", "", func(u string) {
		base = u
		hbJPEGLayer(t, u, "late", func() uint64 { return seq.Add(1) })
	})
	first := hbPlaysJPEG(t, b, func(hbViewer) error { return nil })
	clip := testenv.MakeH264Clip(t, 320, 240, 90, 30)
	testenv.Dial(t, hbPublishURL(base, "late"), nil).PublishH264(t, 33*time.Millisecond, "late", clip)
	got, _ := hbWait(t, b, "the switch to H.264", hbShows("h264", first, viewerState{}))
	t.Logf("after H.264 started: %s", got)
	if got.Connects != 1 {
		t.Errorf("the page connected %d times; the switch must be a select", got.Connects)
	}
	b.RequireCleanConsole(t)
}
