package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/pkg/frames"
)

// Timescale is the MP4 track's clock: 90 kHz, as for all video in MP4.
const Timescale = 90000

// Defaults of Options.
const (
	DefaultTarget       = 10 * time.Second
	DefaultPartMax      = time.Second
	DefaultMaxPartBytes = 16 << 20
	DefaultMaxGap       = 2 * time.Second
)

// maxPartMessages bounds the messages of one part (and so a part box).
const maxPartMessages = 4096

// defaultTicks is the duration given to a last sample when nothing says
// how long it lasts: 1/30 s.
const defaultTicks = Timescale / 30

// Errors of the writer. The returned errors wrap them with detail.
var (
	// ErrOrder: a method was called out of turn (Add before Begin, Begin
	// on a frame that cannot start a segment, Add of a frame Step did not
	// say StepAdd for).
	ErrOrder = errors.New("segment: frame out of order")
	// ErrBadFrame: a frame the writer cannot record: an H.264 access unit
	// that does not split into NAL units, a configuration without SPS
	// and PPS, a JPEG without a size.
	ErrBadFrame = errors.New("segment: frame cannot be recorded")
)

// Options tune a Writer. The zero value (or nil) means the defaults.
type Options struct {
	// Target is how long a segment runs: the first frame that can start a
	// segment (any JPEG; an H.264 configuration or keyframe) once Target
	// has passed since the segment's first frame starts the next one.
	// Default 10 s. Longer segments mean fewer objects (and S3 requests);
	// shorter ones mean less read per seek.
	Target time.Duration
	// PartMax is the longest a part runs (by capture time) before the
	// frame that ends it: the most footage a recorder's crash loses, given
	// the recorder appends each part as Flush returns it. Default 1 s.
	PartMax time.Duration
	// MaxPartBytes ends a part before a frame that would make it larger.
	// It bounds the writer's memory when capture times stall. Default
	// 16 MiB.
	MaxPartBytes int
	// MaxGap: when capture times jump forward by more than this, or go
	// backwards, the next frame that can start a segment starts one, so a
	// segment never spans a pause of the publisher. Default 2 s.
	MaxGap time.Duration
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.Target <= 0 {
		v.Target = DefaultTarget
	}
	if v.PartMax <= 0 {
		v.PartMax = DefaultPartMax
	}
	if v.MaxPartBytes <= 0 {
		v.MaxPartBytes = DefaultMaxPartBytes
	}
	if v.MaxGap <= 0 {
		v.MaxGap = DefaultMaxGap
	}
	return v
}

// Step is what a frame does to the segment being written (see
// Writer.Step).
type Step uint8

const (
	// StepSkip: the frame is not recorded: an offline event, another
	// stream's frame, an H.264 delta with no keyframe before it in the
	// segment, a keyframe before any configuration.
	StepSkip Step = iota
	// StepAdd: Add the frame to the current part.
	StepAdd
	// StepPart: the current part ends before the frame: append Flush's
	// bytes, then Add the frame.
	StepPart
	// StepSegment: the current segment (if any) ends before the frame:
	// append End's bytes and seal the segment, then Begin a new one with
	// the frame.
	StepSegment
)

func (s Step) String() string {
	switch s {
	case StepSkip:
		return "skip"
	case StepAdd:
		return "add"
	case StepPart:
		return "part"
	case StepSegment:
		return "segment"
	}
	return fmt.Sprintf("step(%d)", uint8(s))
}

// Summary describes a segment: what the index records about it.
type Summary struct {
	// Start is the first frame's capture time; End is when the last frame
	// stops being shown: the next frame's capture time when the segment
	// ended because of it, else the last frame's plus the interval before
	// it.
	Start, End time.Time
	// Bytes is the segment's size.
	Bytes int64
	// Frames counts the messages recorded (configurations included).
	Frames int
	// FirstSeq and LastSeq are the first and last messages' sequence
	// numbers.
	FirstSeq, LastSeq uint64
}

// PartInfo locates one part of a segment.
type PartInfo struct {
	Offset, Size int64     // the part's bytes: its part box, moof and mdat
	Start        time.Time // its first message's capture time
	FirstSeq     uint64    // its first message's sequence number
	Frames       int       // its messages
	// Key reports whether a decoder can start at the part: always for
	// JPEG; for H.264 when its first picture is a keyframe (with the
	// configuration in front of it, or the segment's).
	Key bool
}

// message is one frame buffered in the current part.
type message struct {
	kind     frames.Kind
	seq      uint64
	captured int64 // Unix µs
	payload  []byte
	nalus    [][]byte // H.264 access units: the NAL units, aliasing payload
	form     byte     // how the part box keeps the payload (formSample...)
	zeros    []byte   // formStartCodes: the zeros around the units
}

// Writer cuts one stream's frames into segments and parts (see the
// package documentation) and returns the bytes to store. It is not safe
// for concurrent use: one recorder goroutine owns it.
//
// The caller's loop, for each frame f of the stream:
//
//	switch w.Step(f) {
//	case StepSegment:
//		if w.Open() { b, sum, err := w.End(); append b, seal, record sum }
//		b, err := w.Begin(f) // the new segment's first bytes
//	case StepPart:
//		b, err := w.Flush() // append b to the open segment
//		err = w.Add(f)
//	case StepAdd:
//		err = w.Add(f)
//	}
//
// and Flush on a timer when Buffered says a part has waited too long (a
// publisher that stopped sending): then the part's last duration is a
// guess, and the next part's decode time puts the timeline right.
type Writer struct {
	room  string
	codec frames.Codec
	opt   Options

	// The stream's last configuration (H.264), kept across segments so
	// that a keyframe without one in front of it can start a segment.
	config     []byte
	configSeq  uint64
	configTime int64
	configSize [2]int

	open       bool
	keyed      bool  // a keyframe has been added to this segment
	segStart   int64 // Unix µs
	width      int
	height     int
	offset     int64 // bytes of the segment so far
	initSize   int64 // bytes of its init and header box
	partSeq    uint32
	lastTime   int64 // capture time of the last message added
	clk        clock // decode times of the samples written
	lastDur    int64 // duration (ticks) of the last sample written
	lastSample int64 // capture time of the last sample written
	end        int64 // end of the segment so far (Unix µs)
	sum        Summary
	parts      []PartInfo

	msgs      []message
	partBytes int
	samples   int // sample messages in msgs
	next      *frames.Frame

	buf      seekablebuffer.Buffer
	fsamples []*fmp4.Sample
	sampleV  []fmp4.Sample
}

// NewWriter returns a writer for room's layer 0 in codec.
func NewWriter(room string, codec frames.Codec, o *Options) *Writer {
	return &Writer{room: room, codec: codec, opt: o.withDefaults()}
}

// Open reports whether a segment has begun and not ended.
func (w *Writer) Open() bool { return w.open }

// Buffered returns how many messages the current part holds, and the
// capture time of its first one.
func (w *Writer) Buffered() (int, time.Time) {
	if len(w.msgs) == 0 {
		return 0, time.Time{}
	}
	return len(w.msgs), time.UnixMicro(w.msgs[0].captured)
}

// Overdue reports whether the open H.264 segment has run past its target
// by more than MaxGap without a keyframe to end it: the recorder should
// ask the publisher for one (a publisher with a long or endless group of
// pictures would otherwise make one endless segment).
func (w *Writer) Overdue() bool {
	return w.open && w.codec == frames.CodecH264 && w.lastTime-w.segStart > (w.opt.Target+w.opt.MaxGap).Microseconds()
}

// Step says what f does to the segment being written; see Writer. It
// does not change the writer, except that it remembers f when the answer
// is StepPart or StepSegment: the next Flush or End uses f's capture time
// as the end of the last buffered frame.
func (w *Writer) Step(f *frames.Frame) Step {
	s := w.step(f)
	if s == StepPart || s == StepSegment && w.open {
		w.next = f
	}
	return s
}

func (w *Writer) step(f *frames.Frame) Step {
	codec, ok := f.Kind.Codec()
	if !ok || codec != w.codec || f.Layer != 0 {
		return StepSkip
	}
	t := f.Captured.UnixMicro()
	if !w.open {
		if w.canBegin(f) {
			return StepSegment
		}
		return StepSkip
	}
	due := t-w.segStart >= w.opt.Target.Microseconds() || t < w.lastTime || t-w.lastTime > w.opt.MaxGap.Microseconds()
	switch f.Kind {
	case frames.KindJPEG:
		if due {
			return StepSegment
		}
		if wd, ht, err := jpegSize(f); err == nil && (wd != w.width || ht != w.height) {
			return StepSegment
		}
	case frames.KindH264Config:
		if due || !bytes.Equal(f.Payload, w.config) {
			return StepSegment
		}
		if len(w.msgs) == 0 || w.onlyConfigs() {
			return StepAdd
		}
		return StepPart
	case frames.KindH264Key:
		switch {
		case w.onlyConfigs():
			return StepAdd // the configuration in front of it decided
		case due:
			return StepSegment
		case len(w.msgs) == 0:
			return StepAdd
		}
		return StepPart // every keyframe starts a part
	case frames.KindH264Delta:
		if !w.keyed {
			return StepSkip
		}
	}
	if len(w.msgs) > 0 && (t-w.msgs[0].captured >= w.opt.PartMax.Microseconds() ||
		w.partBytes+len(f.Payload) > w.opt.MaxPartBytes || len(w.msgs) >= maxPartMessages) {
		return StepPart
	}
	return StepAdd
}

// onlyConfigs reports whether the current part holds configurations and
// nothing else.
func (w *Writer) onlyConfigs() bool {
	return len(w.msgs) > 0 && w.samples == 0
}

func (w *Writer) canBegin(f *frames.Frame) bool {
	switch f.Kind {
	case frames.KindJPEG, frames.KindH264Config:
		return true
	case frames.KindH264Key:
		return w.config != nil
	}
	return false
}

func jpegSize(f *frames.Frame) (int, int, error) {
	if w, h, err := frames.JPEGSize(f.Payload); err == nil {
		return w, h, nil
	}
	if f.Width > 0 && f.Height > 0 {
		return f.Width, f.Height, nil
	}
	return 0, 0, fmt.Errorf("%w: JPEG %d has no readable size", ErrBadFrame, f.Seq)
}

// Begin starts a segment with f, its first frame: a JPEG, an H.264
// configuration, or an H.264 keyframe when the stream's configuration is
// known from before. It returns the segment's first bytes: the MP4 init
// (ftyp, moov) and framecast's header box. End the open segment first.
func (w *Writer) Begin(f *frames.Frame) ([]byte, error) {
	if w.open {
		return nil, fmt.Errorf("%w: Begin with a segment open (End it first)", ErrOrder)
	}
	if codec, ok := f.Kind.Codec(); !ok || codec != w.codec || !w.canBegin(f) {
		return nil, fmt.Errorf("%w: a kind-%d message cannot begin a %s segment", ErrOrder, f.Kind, w.codec)
	}
	t := f.Captured.UnixMicro()
	var codec codecs.Codec
	switch f.Kind {
	case frames.KindJPEG:
		wd, ht, err := jpegSize(f)
		if err != nil {
			return nil, err
		}
		w.width, w.height = wd, ht
		codec = &codecs.MJPEG{Width: wd, Height: ht}
	default:
		if f.Kind == frames.KindH264Config {
			if err := w.setConfig(f); err != nil {
				return nil, err
			}
		}
		c, err := h264Codec(w.config)
		if err != nil {
			return nil, err
		}
		codec = c
		w.width, w.height = w.configSize[0], w.configSize[1]
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: Timescale, Codec: codec}}}
	w.buf.Reset()
	if err := init.Marshal(&w.buf); err != nil {
		return nil, fmt.Errorf("%w: failed to write the MP4 init: %v", ErrBadFrame, err)
	}
	out := w.appendHeader(w.buf.Bytes(), t)
	out = bytes.Clone(out)

	w.open, w.keyed = true, false
	w.segStart, w.lastTime, w.end = t, t, t
	w.offset = int64(len(out))
	w.initSize = w.offset
	w.partSeq = 0
	w.clk = clock{origin: t, last: -1}
	w.lastDur, w.lastSample = 0, t
	w.sum = Summary{Start: time.UnixMicro(t)}
	w.parts = nil
	w.resetPart()
	if err := w.add(f); err != nil {
		w.open = false
		return nil, err
	}
	return out, nil
}

// setConfig makes f the stream's configuration, after checking that it
// holds an SPS and a PPS.
func (w *Writer) setConfig(f *frames.Frame) error {
	c, err := frames.ParseH264Config(f.Payload)
	if err == nil {
		_, err = h264Codec(f.Payload)
	}
	if err != nil {
		w.config = nil // the keyframes after it are not the old configuration's
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	w.config, w.configSeq, w.configTime = f.Payload, f.Seq, f.Captured.UnixMicro()
	w.configSize = [2]int{c.Width, c.Height}
	return nil
}

// h264Codec is the MP4 codec of a configuration payload: its first SPS
// and PPS.
func h264Codec(config []byte) (*codecs.H264, error) {
	c, err := frames.ParseH264Config(config)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	nalus, err := avc.Split(c.ParamSets)
	if err != nil {
		return nil, fmt.Errorf("%w: configuration: %v", ErrBadFrame, err)
	}
	var h codecs.H264
	for _, n := range nalus {
		switch avc.Type(n) {
		case avc.NALSPS:
			if h.SPS == nil {
				h.SPS = n
			}
		case avc.NALPPS:
			if h.PPS == nil {
				h.PPS = n
			}
		}
	}
	if h.SPS == nil || h.PPS == nil {
		return nil, fmt.Errorf("%w: configuration without SPS and PPS", ErrBadFrame)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(h.SPS); err != nil {
		return nil, fmt.Errorf("%w: configuration's SPS: %v", ErrBadFrame, err)
	}
	return &h, nil
}

func (w *Writer) appendHeader(dst []byte, start int64) []byte {
	cfg := 0
	if w.codec == frames.CodecH264 {
		cfg = 16 + len(w.config)
	}
	size := uuidHead + 1 + 1 + 1 + len(w.room) + 8 + 4 + 4 + cfg + 4
	at := len(dst)
	dst = append(dst, make([]byte, uuidHead)...)
	putUUIDHead(dst[at:], size, uuidHeader)
	dst = append(dst, boxVersion, byte(w.codec), byte(len(w.room)))
	dst = append(dst, w.room...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(start))
	dst = binary.BigEndian.AppendUint16(dst, uint16(w.width))
	dst = binary.BigEndian.AppendUint16(dst, uint16(w.height))
	dst = binary.BigEndian.AppendUint32(dst, uint32(cfg))
	if cfg > 0 {
		dst = binary.BigEndian.AppendUint64(dst, w.configSeq)
		dst = binary.BigEndian.AppendUint64(dst, uint64(w.configTime))
		dst = append(dst, w.config...)
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[at+uuidHead:], castagnoli))
}

// Add adds f to the current part. Step must have said StepAdd for f (or
// StepPart, and Flush has run since).
func (w *Writer) Add(f *frames.Frame) error {
	if !w.open {
		return fmt.Errorf("%w: Add with no segment open", ErrOrder)
	}
	if s := w.step(f); s != StepAdd {
		return fmt.Errorf("%w: Add of message %d (kind %d) where Step says %s", ErrOrder, f.Seq, f.Kind, s)
	}
	return w.add(f)
}

func (w *Writer) add(f *frames.Frame) error {
	m := message{kind: f.Kind, seq: f.Seq, captured: f.Captured.UnixMicro(), payload: f.Payload}
	switch f.Kind {
	case frames.KindH264Config:
		if !bytes.Equal(f.Payload, w.config) { // Begin has checked it
			return fmt.Errorf("%w: a new configuration in the middle of a segment", ErrOrder)
		}
		w.configSeq, w.configTime = f.Seq, m.captured
	case frames.KindH264Key, frames.KindH264Delta:
		nalus, err := avc.Split(f.Payload)
		if err != nil {
			return fmt.Errorf("%w: access unit %d: %v", ErrBadFrame, f.Seq, err)
		}
		m.nalus = nalus
		if f.Kind == frames.KindH264Key {
			w.keyed = true
		}
	}
	if m.kind != frames.KindH264Config {
		w.samples++
	}
	m.setForm()
	w.msgs = append(w.msgs, m)
	w.partBytes += len(f.Payload)
	w.lastTime = m.captured
	w.next = nil
	return nil
}

func (w *Writer) resetPart() {
	clear(w.msgs) // drop references to the frames' payloads
	w.msgs = w.msgs[:0]
	w.partBytes, w.samples = 0, 0
}

// Flush ends the current part and returns its bytes ([part box][moof]
// [mdat]) to append to the segment, or nil when the part holds no
// picture yet (configurations wait for their keyframe). On error the
// part is dropped.
func (w *Writer) Flush() ([]byte, error) {
	if !w.open || w.samples == 0 {
		return nil, nil
	}
	out, err := w.flush()
	if err != nil {
		w.resetPart()
	}
	return out, err
}

func (w *Writer) flush() ([]byte, error) {
	next := int64(-1)
	if w.next != nil {
		next = w.next.Captured.UnixMicro()
		w.next = nil
	}
	// Decode times from capture times, kept increasing when the
	// publisher's clock steps back (the exact times are in the part box).
	w.sampleV = w.sampleV[:0]
	clk := w.clk // advanced only when the part is written
	base, lastDTS, lastT := int64(-1), clk.last, w.lastSample
	var lastDur int64
	for i := range w.msgs {
		m := &w.msgs[i]
		if m.kind == frames.KindH264Config {
			continue
		}
		dts := clk.next(m.captured)
		if base < 0 {
			base = dts
		} else {
			lastDur = dts - lastDTS
			w.sampleV[len(w.sampleV)-1].Duration = uint32(lastDur)
		}
		s := fmp4.Sample{IsNonSyncSample: m.kind == frames.KindH264Delta, Payload: m.payload}
		if m.nalus != nil {
			avcc, err := h264.AVCC(m.nalus).Marshal()
			if err != nil {
				return nil, fmt.Errorf("%w: access unit %d: %v", ErrBadFrame, m.seq, err)
			}
			s.Payload = avcc
		}
		w.sampleV = append(w.sampleV, s)
		lastDTS, lastT = dts, m.captured
	}
	// The last sample lasts until the next frame, when it is known and
	// not after a pause; else as long as the one before it.
	end := int64(-1)
	switch {
	case next >= lastT && next-lastT <= w.opt.MaxGap.Microseconds():
		lastDur = max(clk.ticks(next)-lastDTS, 1)
		end = next
	case lastDur == 0 && w.lastDur > 0:
		lastDur = w.lastDur
	case lastDur == 0:
		lastDur = defaultTicks
	}
	if end < 0 {
		end = lastT + lastDur*100/9
	}
	w.sampleV[len(w.sampleV)-1].Duration = uint32(lastDur)
	w.fsamples = w.fsamples[:0]
	for i := range w.sampleV {
		w.fsamples = append(w.fsamples, &w.sampleV[i])
	}

	// [part box][moof][mdat]: the part box first, its checksums filled in
	// once the moof and mdat are written.
	box := w.partBoxSize()
	w.buf.Reset()
	w.buf.Write(make([]byte, box))
	part := fmp4.Part{SequenceNumber: w.partSeq, Tracks: []*fmp4.PartTrack{{ID: 1, BaseTime: uint64(base), Samples: w.fsamples}}}
	err := part.Marshal(&w.buf)
	clear(w.fsamples)
	clear(w.sampleV)
	if err != nil {
		return nil, fmt.Errorf("failed to write part %d: %w", w.partSeq, err)
	}
	out := bytes.Clone(w.buf.Bytes())
	w.putPartBox(out[:box], crc32.Checksum(out[box:], castagnoli))

	first := w.msgs[0]
	key := w.codec == frames.CodecJPEG
	for _, m := range w.msgs {
		if m.kind != frames.KindH264Config {
			key = key || m.kind == frames.KindH264Key
			break
		}
	}
	w.parts = append(w.parts, PartInfo{Offset: w.offset, Size: int64(len(out)), Start: time.UnixMicro(first.captured),
		FirstSeq: first.seq, Frames: len(w.msgs), Key: key})
	if w.sum.Frames == 0 {
		w.sum.FirstSeq = first.seq
	}
	w.sum.Frames += len(w.msgs)
	w.sum.LastSeq = w.msgs[len(w.msgs)-1].seq
	w.offset += int64(len(out))
	w.partSeq++
	w.clk, w.lastDur, w.lastSample = clk, lastDur, lastT
	w.end = end
	w.resetPart()
	return out, nil
}

// partBoxSize is the size of the current part's box.
func (w *Writer) partBoxSize() int {
	n := uuidHead + 1 + 1 + 4 + 4 + 4 + 4
	for _, m := range w.msgs {
		n += msgHead
		switch m.form {
		case formInline:
			n += 4 + len(m.payload)
		case formStartCodes:
			n += 2 + len(m.zeros)
		}
	}
	return n
}

// putPartBox writes the current part's box into b (sized by partBoxSize).
func (w *Writer) putPartBox(b []byte, dataCRC uint32) {
	putUUIDHead(b, len(b), uuidPart)
	p := b[uuidHead:uuidHead]
	p = append(p, boxVersion, 0)
	p = binary.BigEndian.AppendUint32(p, w.partSeq)
	p = binary.BigEndian.AppendUint32(p, dataCRC)
	p = binary.BigEndian.AppendUint32(p, uint32(len(w.msgs)))
	for _, m := range w.msgs {
		p = append(p, byte(m.kind), m.form)
		p = binary.BigEndian.AppendUint64(p, m.seq)
		p = binary.BigEndian.AppendUint64(p, uint64(m.captured))
		switch m.form {
		case formInline:
			p = binary.BigEndian.AppendUint32(p, uint32(len(m.payload)))
			p = append(p, m.payload...)
		case formStartCodes:
			p = binary.BigEndian.AppendUint16(p, uint16(len(m.nalus)))
			p = append(p, m.zeros...)
		}
	}
	binary.BigEndian.AppendUint32(p, crc32.Checksum(p, castagnoli))
}

// form chooses how the part box keeps m's payload (see formSample),
// setting m.form and m.zeros.
//
// Around and between an access unit's NAL units (as avc.Split finds them,
// aliasing the payload) there are only zero bytes, each unit's start code
// ending in 01, so the counts of those zeros rebuild the payload exactly:
// one count per unit (the zeros before its 01) and one for after the last.
// Encoders write 3 zeros (00 00 00 01) and nothing after: that common
// form stores nothing. Counts over 255, which no sane encoder writes, make
// the box keep the whole payload.
func (m *message) setForm() {
	m.form = formSample
	if m.nalus == nil {
		if m.kind == frames.KindH264Config {
			m.form = formInline
		}
		return
	}
	pos, canonical := 0, true
	for _, n := range m.nalus {
		at := cap(m.payload) - cap(n) // n is a subslice of payload
		if at-pos-1 != 3 {
			canonical = false
			break
		}
		pos = at + len(n)
	}
	if canonical && pos == len(m.payload) {
		return
	}
	m.zeros = make([]byte, 0, len(m.nalus)+1)
	pos = 0
	for _, n := range m.nalus {
		at := cap(m.payload) - cap(n)
		m.zeros = append(m.zeros, byte(at-pos-1))
		if at-pos-1 > 255 {
			m.form, m.zeros = formInline, nil
			return
		}
		pos = at + len(n)
	}
	tail := len(m.payload) - pos
	if tail > 255 || len(m.nalus) > 0xFFFF {
		m.form, m.zeros = formInline, nil
		return
	}
	m.zeros = append(m.zeros, byte(tail))
	m.form = formStartCodes
}

// End ends the open segment: it flushes the part being written and adds
// the index box. It returns the bytes to append before sealing the
// segment, and the segment's summary for the index. A segment whose
// Summary.Frames is 0 holds nothing worth keeping: discard it.
func (w *Writer) End() ([]byte, Summary, error) {
	if !w.open {
		return nil, Summary{}, fmt.Errorf("%w: End with no segment open", ErrOrder)
	}
	out, err := w.Flush()
	if err != nil {
		return nil, Summary{}, err
	}
	// Configurations still buffered wait for a keyframe that belongs to
	// the next segment, whose header carries them.
	w.resetPart()
	at := len(out)
	out = appendIndex(out, w.initSize, w.end, w.sum.LastSeq, w.parts)
	w.offset += int64(len(out) - at)
	w.open, w.keyed, w.next = false, false, nil
	sum := w.sum
	sum.End = time.UnixMicro(w.end)
	sum.Bytes = w.offset
	return out, sum, nil
}

// appendIndex appends the index box of a segment to dst.
func appendIndex(dst []byte, initSize, end int64, lastSeq uint64, parts []PartInfo) []byte {
	size := indexFixed + len(parts)*partEntry
	at := len(dst)
	dst = append(dst, make([]byte, uuidHead)...)
	putUUIDHead(dst[at:], size, uuidIndex)
	dst = append(dst, boxVersion, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(initSize))
	dst = binary.BigEndian.AppendUint64(dst, uint64(end))
	dst = binary.BigEndian.AppendUint64(dst, lastSeq)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(parts)))
	for _, p := range parts {
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.Offset))
		dst = binary.BigEndian.AppendUint32(dst, uint32(p.Size))
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.Start.UnixMicro()))
		dst = binary.BigEndian.AppendUint64(dst, p.FirstSeq)
		dst = binary.BigEndian.AppendUint32(dst, uint32(p.Frames))
		var flags byte
		if p.Key {
			flags = 1
		}
		dst = append(dst, flags)
	}
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[at+uuidHead:], castagnoli))
	return binary.BigEndian.AppendUint32(dst, uint32(size))
}
