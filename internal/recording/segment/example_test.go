package segment_test

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"time"

	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/pkg/frames"
)

// A recorder's loop: each frame's Step says whether it joins the current
// part, ends it, or ends the segment. Here 25 s of a 2 fps JPEG stream
// become three segments of 1 s parts.
func ExampleWriter() {
	var img bytes.Buffer
	jpeg.Encode(&img, image.NewGray(image.Rect(0, 0, 16, 16)), nil)
	start := time.Date(2026, 12, 7, 14, 3, 0, 0, time.UTC)

	w := segment.NewWriter("lobby", frames.CodecJPEG, nil)
	var journal []byte // what the recorder appends to the open segment's journal
	seal := func() {
		b, sum, err := w.End()
		if err != nil {
			panic(err)
		}
		journal = append(journal, b...)
		fs, info, err := segment.Read(journal)
		fmt.Printf("segment %s–%s: %d frames in %d parts, read back: %d frames, %v\n",
			sum.Start.UTC().Format("15:04:05"), sum.End.UTC().Format("15:04:05"), sum.Frames, len(info.Parts), len(fs), err)
	}
	for i := range 50 {
		f, err := frames.New(frames.KindJPEG, uint64(i+1), start.Add(time.Duration(i)*500*time.Millisecond), img.Bytes(), 0)
		if err != nil {
			panic(err)
		}
		switch w.Step(f) {
		case segment.StepSegment:
			if w.Open() {
				seal()
			}
			journal, err = w.Begin(f)
		case segment.StepPart:
			var part []byte
			part, err = w.Flush()
			journal = append(journal, part...)
			if err == nil {
				err = w.Add(f)
			}
		case segment.StepAdd:
			err = w.Add(f)
		}
		if err != nil {
			panic(err)
		}
	}
	seal()
	// Output:
	// segment 14:03:00–14:03:10: 20 frames in 10 parts, read back: 20 frames, <nil>
	// segment 14:03:10–14:03:20: 20 frames in 10 parts, read back: 20 frames, <nil>
	// segment 14:03:20–14:03:25: 10 frames in 5 parts, read back: 10 frames, <nil>
}
