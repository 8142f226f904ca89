package testclip

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestOpenReadsEveryPicture(t *testing.T) {
	needFFmpeg(t)
	c := Clip{Width: 64, Height: 48, FPS: 10, Frames: 3, Noise: 8}
	r, err := Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for i := range c.Frames {
		pic, err := r.Next()
		if err != nil {
			t.Fatalf("picture %d: %v", i, err)
		}
		if len(pic) != c.FrameSize() {
			t.Fatalf("picture %d: %d bytes, want %d", i, len(pic), c.FrameSize())
		}
		if i == 0 {
			first = append([]byte(nil), pic...)
		} else if string(pic) == string(first) {
			t.Errorf("picture %d equals picture 0: the pattern does not move", i)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last picture: %v, want io.EOF", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// Stopping early is not an error.
	r, err = Open(context.Background(), HD)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after one picture: %v", err)
	}
}

func TestBadClip(t *testing.T) {
	for _, c := range []Clip{{Width: 63, Height: 48, FPS: 10, Frames: 1}, {Width: 64, Height: 48, FPS: 0, Frames: 1}, {Width: 64, Height: 48, FPS: 10}} {
		if _, err := Open(context.Background(), c); err == nil || !strings.Contains(err.Error(), "testclip: bad clip") {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestDecodedFramesRejectsGarbage(t *testing.T) {
	needFFmpeg(t)
	if n, err := DecodedFrames(context.Background(), []byte("not h264 at all")); err == nil {
		t.Fatalf("decoded %d pictures from garbage", n)
	}
}

func TestCommand(t *testing.T) {
	want := "ffmpeg -hide_banner -loglevel error -f lavfi -i 'testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t,format=yuv420p' -frames:v 90 -pix_fmt yuv420p -f rawvideo -"
	if got := HD.Command(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
