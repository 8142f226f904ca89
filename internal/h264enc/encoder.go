// Package h264enc encodes raw I420 pictures into H.264 with Cisco's OpenH264
// (Debian's libopenh264-dev, BSD-2-Clause) through cgo, at low-latency settings:
// one access unit out for each picture in, synchronously, constrained baseline
// profile (no B-frames, CAVLC), one slice, no frame skipping, the sequence and
// picture parameter sets in front of every IDR picture, and an IDR picture on
// request at any moment (ForceKeyframe). docs/h264.md says why this encoder.
//
// An Encoder is used from one goroutine (Encode, Close), except ForceKeyframe,
// which any goroutine may call at any time.
package h264enc

/*
#cgo pkg-config: openh264
#include <stdlib.h>
#include <string.h>
#include <wels/codec_api.h>

static int fc_create(ISVCEncoder **e) { return WelsCreateSVCEncoder(e); }
static int fc_defaults(ISVCEncoder *e, SEncParamExt *p) { return (*e)->GetDefaultParams(e, p); }
static int fc_init(ISVCEncoder *e, SEncParamExt *p) { return (*e)->InitializeExt(e, p); }
static int fc_trace_level(ISVCEncoder *e, int level) { return (*e)->SetOption(e, ENCODER_OPTION_TRACE_LEVEL, &level); }
static int fc_force_idr(ISVCEncoder *e) { return (*e)->ForceIntraFrame(e, true); }
static void fc_destroy(ISVCEncoder *e) { (*e)->Uninitialize(e); WelsDestroySVCEncoder(e); }

// fc_encode points the picture at yuv only for the call (cgo's rules: C keeps no
// Go pointer after a call returns).
static int fc_encode(ISVCEncoder *e, SSourcePicture *pic, SFrameBSInfo *info,
                     unsigned char *yuv, int w, int h, long long ts) {
	memset(pic, 0, sizeof(*pic));
	pic->iColorFormat = videoFormatI420;
	pic->iPicWidth = w;
	pic->iPicHeight = h;
	pic->iStride[0] = w;
	pic->iStride[1] = w / 2;
	pic->iStride[2] = w / 2;
	pic->pData[0] = yuv;
	pic->pData[1] = yuv + w * h;
	pic->pData[2] = yuv + w * h + (w / 2) * (h / 2);
	pic->uiTimeStamp = ts;
	memset(info, 0, sizeof(*info));
	int rv = (*e)->EncodeFrame(e, pic, info);
	memset(pic, 0, sizeof(*pic));
	return rv;
}

static SLayerBSInfo *fc_layer(SFrameBSInfo *info, int i) { return &info->sLayerInfo[i]; }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// ErrClosed is returned by Encode after Close.
var ErrClosed = errors.New("h264enc: encoder closed")

// RateControl chooses how OpenH264 spends bits.
type RateControl int

const (
	// RateBitrate (the default) holds the stream near Options.BitrateKbps,
	// raising the quantizer on busy pictures: the egress cost is predictable.
	RateBitrate RateControl = iota
	// RateQuality lets OpenH264 treat BitrateKbps as a loose target and keep
	// picture quality steadier; the stream grows on busy scenes.
	RateQuality
)

// Defaults of Options' zero fields.
const (
	// DefaultBitrateKbps is the target for 720p at 30 fps from a camera with
	// mild sensor noise: docs/h264.md has the measurements behind it (SSIM
	// within 0.03 of JPEG quality 80 at well under a quarter of its bytes).
	// Other sizes scale it by their pixel count (see Options.BitrateKbps).
	DefaultBitrateKbps = 2500
	DefaultKeyInterval = 2 * time.Second
	DefaultThreads     = 1
)

// Limits Options are checked against.
const (
	MinSide        = 16    // pixels, either side: OpenH264 refuses smaller pictures
	MaxSide        = 4096  // pixels, either side
	MaxMacroblocks = 36864 // per picture: level 5.2's largest frame (4096×2304)
	MinFPS, MaxFPS = 1, 60 // OpenH264's encoder accepts 1–60 pictures a second
	MaxBitrateKbps = 100_000
	MaxKeyInterval = time.Minute
	MaxThreads     = 4
)

// Options configure an Encoder. Zero fields take the defaults documented on
// each one.
type Options struct {
	// Width and Height of the pictures, in pixels: even (I420 halves both for
	// chroma), MinSide–MaxSide each and MaxMacroblocks in all. Required.
	Width, Height int
	// FPS is the rate pictures arrive at, MinFPS–MaxFPS. Rate control spreads
	// the bitrate over it, and it turns KeyInterval into a count of pictures.
	// Required.
	FPS float64
	// BitrateKbps is the target bitrate in kbit/s. 0: DefaultBitrateKbps
	// scaled by the picture's area relative to 1280×720 (at least 200), and by
	// FPS relative to 30 (square root: lower rates give each picture more).
	BitrateKbps int
	// KeyInterval is the time between IDR pictures, turned into a count of
	// pictures at FPS (at least 1). 0: DefaultKeyInterval (2 s). A forced
	// keyframe restarts the interval (OpenH264 counts from the last IDR), so
	// no group of pictures is ever longer than KeyInterval.
	KeyInterval time.Duration
	// Threads is OpenH264's thread count, 1–MaxThreads. 0: DefaultThreads (1):
	// with one slice a picture is coded by one thread anyway, and the
	// machine's other work keeps its cores.
	Threads int
	// RateControl: RateBitrate (the default) or RateQuality.
	RateControl RateControl
}

// withDefaults validates o and fills its zero fields.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Width <= 0 || o.Height <= 0:
		return o, fmt.Errorf("h264enc: size %d×%d: width and height must be positive", o.Width, o.Height)
	case o.Width%2 != 0 || o.Height%2 != 0:
		return o, fmt.Errorf("h264enc: size %d×%d: width and height must be even (I420 chroma is half size)", o.Width, o.Height)
	case o.Width < MinSide || o.Height < MinSide:
		return o, fmt.Errorf("h264enc: size %d×%d: at least %d pixels a side", o.Width, o.Height, MinSide)
	case o.Width > MaxSide || o.Height > MaxSide:
		return o, fmt.Errorf("h264enc: size %d×%d: at most %d pixels a side", o.Width, o.Height, MaxSide)
	case ((o.Width+15)/16)*((o.Height+15)/16) > MaxMacroblocks:
		return o, fmt.Errorf("h264enc: size %d×%d: more than %d macroblocks (level 5.2)", o.Width, o.Height, MaxMacroblocks)
	case math.IsNaN(o.FPS) || o.FPS < MinFPS || o.FPS > MaxFPS:
		return o, fmt.Errorf("h264enc: FPS %v out of range %d–%d", o.FPS, MinFPS, MaxFPS)
	case o.BitrateKbps < 0 || o.BitrateKbps > MaxBitrateKbps:
		return o, fmt.Errorf("h264enc: bitrate %d kbit/s out of range 0–%d (0: default)", o.BitrateKbps, MaxBitrateKbps)
	case o.KeyInterval < 0 || o.KeyInterval > MaxKeyInterval:
		return o, fmt.Errorf("h264enc: key interval %v out of range 0–%v (0: default)", o.KeyInterval, MaxKeyInterval)
	case o.Threads < 0 || o.Threads > MaxThreads:
		return o, fmt.Errorf("h264enc: threads %d out of range 0–%d (0: default)", o.Threads, MaxThreads)
	case o.RateControl != RateBitrate && o.RateControl != RateQuality:
		return o, fmt.Errorf("h264enc: unknown rate control %d", o.RateControl)
	}
	if o.BitrateKbps == 0 {
		o.BitrateKbps = DefaultBitrate(o.Width, o.Height, o.FPS)
	}
	if o.KeyInterval == 0 {
		o.KeyInterval = DefaultKeyInterval
	}
	if o.Threads == 0 {
		o.Threads = DefaultThreads
	}
	return o, nil
}

// DefaultBitrate is the bitrate (kbit/s) an Encoder uses when
// Options.BitrateKbps is 0: DefaultBitrateKbps at 1280×720 and 30 fps, scaled
// by area and by the square root of the frame rate, at least 200.
func DefaultBitrate(width, height int, fps float64) int {
	k := float64(DefaultBitrateKbps) * float64(width*height) / (1280 * 720) * math.Sqrt(fps/30)
	return max(200, int(math.Round(k)))
}

// KeyIntervalFrames is the IDR period in pictures for an interval at fps.
func KeyIntervalFrames(interval time.Duration, fps float64) int {
	return max(1, int(math.Round(interval.Seconds()*fps)))
}

// Encoder is one OpenH264 encoder. Encode and Close must be called from one
// goroutine at a time (the sender's encode loop); ForceKeyframe may be called
// from any goroutine.
type Encoder struct {
	opts  Options
	enc   *C.ISVCEncoder
	pic   *C.SSourcePicture // C memory, reused
	info  *C.SFrameBSInfo   // C memory, reused
	out   []byte
	count int64 // pictures encoded
	force atomic.Bool
}

// New starts an encoder. It fails on bad options (the error names the field)
// and when OpenH264 refuses its settings.
func New(o Options) (*Encoder, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Encoder{opts: o}
	if rv := C.fc_create(&e.enc); rv != 0 || e.enc == nil {
		return nil, fmt.Errorf("h264enc: failed to create OpenH264 encoder: code %d", int(rv))
	}
	C.fc_trace_level(e.enc, C.WELS_LOG_ERROR)
	p := (*C.SEncParamExt)(C.calloc(1, C.sizeof_SEncParamExt))
	defer C.free(unsafe.Pointer(p))
	C.fc_defaults(e.enc, p)
	p.iUsageType = C.CAMERA_VIDEO_REAL_TIME
	p.iPicWidth, p.iPicHeight = C.int(o.Width), C.int(o.Height)
	p.iTargetBitrate = C.int(o.BitrateKbps * 1000)
	p.iMaxBitrate = C.UNSPECIFIED_BIT_RATE
	p.iRCMode = C.RC_BITRATE_MODE
	if o.RateControl == RateQuality {
		p.iRCMode = C.RC_QUALITY_MODE
	}
	p.fMaxFrameRate = C.float(o.FPS)
	p.iTemporalLayerNum = 1
	p.iSpatialLayerNum = 1
	p.uiIntraPeriod = C.uint(KeyIntervalFrames(o.KeyInterval, o.FPS))
	p.iNumRefFrame = 1
	p.eSpsPpsIdStrategy = C.CONSTANT_ID
	p.bPrefixNalAddingCtrl = false
	p.bEnableSSEI = false
	p.iEntropyCodingModeFlag = 0 // CAVLC: baseline has no CABAC
	p.bEnableFrameSkip = false   // every picture in gives an access unit out
	p.iMultipleThreadIdc = C.ushort(o.Threads)
	p.bEnableLongTermReference = false
	l := &p.sSpatialLayers[0]
	l.iVideoWidth, l.iVideoHeight = C.int(o.Width), C.int(o.Height)
	l.fFrameRate = C.float(o.FPS)
	l.iSpatialBitrate = p.iTargetBitrate
	l.iMaxSpatialBitrate = C.UNSPECIFIED_BIT_RATE
	l.uiProfileIdc = C.PRO_BASELINE
	l.uiLevelIdc = C.LEVEL_UNKNOWN // OpenH264 picks the level from size, rate and bitrate
	l.sSliceArgument.uiSliceMode = C.SM_SINGLE_SLICE
	l.sSliceArgument.uiSliceNum = 1
	if rv := C.fc_init(e.enc, p); rv != 0 {
		C.fc_destroy(e.enc)
		return nil, fmt.Errorf("h264enc: OpenH264 refused the settings %+v: code %d", o, int(rv))
	}
	e.pic = (*C.SSourcePicture)(C.calloc(1, C.sizeof_SSourcePicture))
	e.info = (*C.SFrameBSInfo)(C.calloc(1, C.sizeof_SFrameBSInfo))
	return e, nil
}

// Options returns the encoder's options with the defaults filled in.
func (e *Encoder) Options() Options { return e.opts }

// ForceKeyframe makes the next Encode produce an IDR picture (with SPS and
// PPS in front). It is safe to call from any goroutine, any number of times:
// requests before one Encode give one keyframe.
func (e *Encoder) ForceKeyframe() { e.force.Store(true) }

// Encode encodes one picture, given as I420: the Width×Height Y plane, then
// the U and V planes at half width and height (Width×Height×3/2 bytes). With
// forceKey, or after ForceKeyframe, the picture is an IDR.
//
// It returns the picture's access unit in Annex-B form (each NAL unit after a
// 4-byte start code; SPS and PPS in front of every IDR picture) and whether it
// is a keyframe. The returned bytes are the encoder's own buffer, valid until
// the next call of Encode or Close: copy them to keep them.
func (e *Encoder) Encode(i420 []byte, forceKey bool) (au []byte, key bool, err error) {
	if e.enc == nil {
		return nil, false, ErrClosed
	}
	w, h := e.opts.Width, e.opts.Height
	if want := w * h * 3 / 2; len(i420) != want {
		return nil, false, fmt.Errorf("h264enc: picture of %d bytes, want %d (I420 %d×%d)", len(i420), want, w, h)
	}
	if e.force.Swap(false) || forceKey {
		if rv := C.fc_force_idr(e.enc); rv != 0 {
			return nil, false, fmt.Errorf("h264enc: failed to force an IDR picture: code %d", int(rv))
		}
	}
	ts := C.longlong(float64(e.count) * 1000 / e.opts.FPS)
	if rv := C.fc_encode(e.enc, e.pic, e.info, (*C.uchar)(unsafe.Pointer(&i420[0])), C.int(w), C.int(h), ts); rv != 0 {
		return nil, false, fmt.Errorf("h264enc: failed to encode picture %d: code %d", e.count, int(rv))
	}
	e.count++
	switch e.info.eFrameType {
	case C.videoFrameTypeSkip, C.videoFrameTypeInvalid:
		// Frame skipping is off, so this does not happen at the settings New
		// makes; say so loudly if a release of OpenH264 changes that.
		return nil, false, fmt.Errorf("h264enc: OpenH264 skipped picture %d (frame type %d)", e.count-1, int(e.info.eFrameType))
	}
	e.out = e.out[:0]
	for i := range int(e.info.iLayerNum) {
		l := C.fc_layer(e.info, C.int(i))
		size := 0
		for _, n := range unsafe.Slice(l.pNalLengthInByte, int(l.iNalCount)) {
			size += int(n)
		}
		e.out = append(e.out, unsafe.Slice((*byte)(unsafe.Pointer(l.pBsBuf)), size)...)
	}
	return e.out, e.info.eFrameType == C.videoFrameTypeIDR, nil
}

// Close frees the encoder. Encode after Close returns ErrClosed; Close twice
// does nothing.
func (e *Encoder) Close() error {
	if e.enc == nil {
		return nil
	}
	C.fc_destroy(e.enc)
	C.free(unsafe.Pointer(e.pic))
	C.free(unsafe.Pointer(e.info))
	e.enc, e.pic, e.info, e.out = nil, nil, nil, nil
	return nil
}
