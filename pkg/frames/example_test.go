package frames_test

import (
	"fmt"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// A JPEG small enough to print: SOI, an APP0 marker, EOI. Real frames come
// from a camera encoder; the package checks only the markers.
var exampleJPEG = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0xFF, 0xD9}

func ExampleNew() {
	captured := time.Date(2024, 5, 17, 12, 0, 0, 0, time.UTC)
	f, err := frames.New(frames.KindJPEG, 1, captured, exampleJPEG, 1<<20)
	if err != nil {
		panic(err)
	}
	msg := f.Binary() // what a publisher sends and the channel layer carries
	fmt.Printf("header % x\n", msg[:frames.HeaderSize])

	g, err := frames.ParseBinary(msg, 0, time.Now(), 1<<20)
	if err != nil {
		panic(err)
	}
	fmt.Println(g.Kind == frames.KindJPEG, g.Seq, g.Captured.UTC().Format(time.RFC3339), len(g.Payload))
	// Output:
	// header 01 01 00 14 00 00 00 00 00 00 00 01 00 06 18 a5 17 4f 30 00
	// true 1 2024-05-17T12:00:00Z 8
}

func ExampleParseDataURL() {
	// The seed's sender posts data URLs with the non-standard "image/jpg".
	msg := []byte("data:image/jpg;base64,/9j/4AAC/9k=")
	now := time.Date(2024, 5, 17, 12, 0, 0, 0, time.UTC)
	f, err := frames.ParseDataURL(msg, 42, now, 1<<20)
	if err != nil {
		panic(err)
	}
	fmt.Printf("seq %d, % x\n", f.Seq, f.Payload)
	fmt.Printf("%s\n", f.JSON())

	_, err = frames.ParseDataURL([]byte("data:image/png;base64,iVBORw0KGgo="), 43, now, 1<<20)
	fmt.Println(err)
	// Output:
	// seq 42, ff d8 ff e0 00 02 ff d9
	// {"message":"data:image/jpeg;base64,/9j/4AAC/9k=","seq":42,"ts":1715947200000000}
	// frames: data URL is not image/jpeg: "image/png"
}
