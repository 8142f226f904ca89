package rooms_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// testJPEG passes frames.CheckJPEG; the hub never decodes images.
var testJPEG = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 'f', 'c', 0xFF, 0xD9}

var epoch = time.Date(2024, 5, 17, 12, 0, 0, 0, time.UTC)

// msg returns the binary message of frame seq, as the channel layer carries it.
func msg(seq uint64) []byte {
	return frames.AppendBinary(nil, seq, epoch.Add(time.Duration(seq)*time.Millisecond), testJPEG)
}

// frame returns frame seq, as a publisher hands it to the hub.
func frame(t testing.TB, seq uint64) *frames.Frame {
	t.Helper()
	f, err := frames.New(frames.KindJPEG, seq, epoch.Add(time.Duration(seq)*time.Millisecond), testJPEG, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newMemoryHub(t testing.TB, opts rooms.Options) (*rooms.Hub, *rooms.MemoryLayer) {
	t.Helper()
	layer := rooms.NewMemoryLayer()
	t.Cleanup(func() { layer.Close() })
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.FanoutShards == 0 {
		// Offers complete before Publish returns, so a test can look at
		// the slots right after it: the hub's semantics, without the
		// shards' timing. fanout_test.go covers the shards.
		opts.FanoutShards = 1
	}
	return rooms.NewHub(layer, opts), layer
}

// st returns the main stream of room, or the stream a name names.
func st(name string) frames.Stream {
	s, err := frames.ParseStream(name)
	if err != nil {
		panic(err)
	}
	return s
}

func join(t testing.TB, h *rooms.Hub, stream frames.Stream) *rooms.Viewer {
	t.Helper()
	v, err := h.Join(context.Background(), stream)
	if err != nil {
		t.Fatalf("Join(%v): %v", stream, err)
	}
	return v
}

func publish(t testing.TB, l rooms.Layer, room string, seq uint64) {
	t.Helper()
	if err := l.Publish(context.Background(), room, msg(seq)); err != nil {
		t.Fatalf("Publish(%q, %d): %v", room, seq, err)
	}
}

// next returns the viewer's next frame, failing the test after timeout.
func next(t testing.TB, v *rooms.Viewer, timeout time.Duration) *frames.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	f, err := v.Next(ctx)
	if err != nil {
		t.Fatalf("viewer of %q got no frame within %v: %v", v.Stream(), timeout, err)
	}
	return f
}

// waiting returns the frame in the viewer's slot without waiting: Next with
// a cancelled context returns a frame only if one is already there.
func waiting(v *rooms.Viewer) (*frames.Frame, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return v.Next(ctx)
}

func roomNames(h *rooms.Hub) []string {
	var names []string
	for _, r := range h.Streams() {
		names = append(names, r.Stream.String())
	}
	return names
}

func TestJoinThenPublish(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{})
	v := join(t, hub, st("lobby"))
	if v.Stream() != st("lobby") {
		t.Fatalf("Stream() = %v", v.Stream())
	}
	if f, err := waiting(v); err == nil {
		t.Fatalf("a viewer of a room nobody published to has frame %d", f.Seq)
	}

	publish(t, layer, "lobby", 1)
	f := next(t, v, time.Second)
	if f.Seq != 1 || f.Room != "lobby" || string(f.Payload) != string(testJPEG) {
		t.Fatalf("got seq %d room %q, want seq 1 room lobby", f.Seq, f.Room)
	}

	// Other rooms' frames do not reach the viewer.
	other := join(t, hub, st("other"))
	publish(t, layer, "other", 2)
	if f, err := waiting(v); err == nil {
		t.Fatalf("viewer of lobby got frame %d of room other", f.Seq)
	}
	if f := next(t, other, time.Second); f.Seq != 2 {
		t.Fatalf("viewer of other got seq %d, want 2", f.Seq)
	}

	// Bad messages are counted, not delivered.
	if err := layer.Publish(context.Background(), "lobby", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if f, err := waiting(v); err == nil {
		t.Fatalf("viewer got frame %d from a bad message", f.Seq)
	}
	s := hub.Stats()
	if s.Relayed != 2 || s.BadMessages != 1 || s.Rooms != 2 || s.Viewers != 2 {
		t.Fatalf("Stats() = %+v, want 2 relayed, 1 bad message, 2 rooms, 2 viewers", s)
	}
}

func TestJoinThenPublisher(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{})
	v := join(t, hub, st("lobby"))
	p, err := hub.NewPublisher(st("lobby"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.Send(frame(t, 1))
	if f := next(t, v, 2*time.Second); f.Seq != 1 || f.IsOffline() {
		t.Fatalf("got seq %d offline %v, want frame 1", f.Seq, f.IsOffline())
	}
	testenv.WaitFor(t, 2*time.Second, "Published to count the frame", func() error {
		if s := hub.Stats(); s.Published != 1 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
}

// TestLatestWins: a viewer may fall MaxBehindFrames frames behind and still
// receive them all, in order; one more frame skips it to the newest.
func TestLatestWins(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{})
	v := join(t, hub, st("lobby"))
	for seq := uint64(1); seq <= rooms.MaxBehindFrames; seq++ {
		publish(t, layer, "lobby", seq) // MemoryLayer delivers synchronously
	}
	for seq := uint64(1); seq <= rooms.MaxBehindFrames; seq++ {
		if f := next(t, v, time.Second); f.Seq != seq {
			t.Fatalf("Next() = frame %d, want %d", f.Seq, seq)
		}
	}
	if got := v.Skipped(); got != 0 {
		t.Fatalf("Skipped() = %d within the bound, want 0", got)
	}
	last := uint64(2*rooms.MaxBehindFrames + 1)
	for seq := uint64(rooms.MaxBehindFrames + 1); seq <= last; seq++ {
		publish(t, layer, "lobby", seq)
	}
	if f := next(t, v, time.Second); f.Seq != last {
		t.Fatalf("Next() = frame %d, want the newest, %d", f.Seq, last)
	}
	if got := v.Skipped(); got != rooms.MaxBehindFrames {
		t.Fatalf("Skipped() = %d, want %d", got, rooms.MaxBehindFrames)
	}
	if got := hub.Stats().Skipped; got != rooms.MaxBehindFrames {
		t.Fatalf("Stats().Skipped = %d, want %d", got, rooms.MaxBehindFrames)
	}
	if f := v.TryNext(); f != nil {
		t.Fatalf("queue still holds frame %d after Next", f.Seq)
	}
}

// TestOfflineIsNotCountedAsSkipped: offline events reach viewers in order
// with frames, and one dropped for a newer frame is not a skipped image.
func TestOfflineIsNotCountedAsSkipped(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{})
	v := join(t, hub, st("lobby"))
	if err := layer.Publish(context.Background(), "lobby", frames.Offline(1, epoch).Binary()); err != nil {
		t.Fatal(err)
	}
	publish(t, layer, "lobby", 2)
	if f := next(t, v, time.Second); !f.IsOffline() {
		t.Fatalf("got frame %d, want the offline event first", f.Seq)
	}
	if f := next(t, v, time.Second); f.Seq != 2 {
		t.Fatalf("got %d, want 2", f.Seq)
	}
	if err := layer.Publish(context.Background(), "lobby", frames.Offline(2, epoch).Binary()); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(3); seq <= rooms.MaxBehindFrames+2; seq++ {
		publish(t, layer, "lobby", seq) // the last one skips the queue: the event and the frames before it
	}
	if f := next(t, v, time.Second); f.Seq != rooms.MaxBehindFrames+2 {
		t.Fatalf("got %d, want %d", f.Seq, rooms.MaxBehindFrames+2)
	}
	if got, want := v.Skipped(), uint64(rooms.MaxBehindFrames-1); got != want {
		t.Fatalf("Skipped() = %d, want %d (images only)", got, want)
	}
}

func TestStuckViewerDoesNotDelayOthers(t *testing.T) {
	const n = 2000
	hub, layer := newMemoryHub(t, rooms.Options{})
	stuck := join(t, hub, st("lobby")) // never calls Next until the end

	t.Run("lock step", func(t *testing.T) {
		fast := join(t, hub, st("lobby"))
		defer hub.Leave(fast)
		for seq := uint64(1); seq <= n; seq++ {
			publish(t, layer, "lobby", seq)
			if f := next(t, fast, time.Second); f.Seq != seq {
				t.Fatalf("fast viewer got frame %d, want %d", f.Seq, seq)
			}
		}
		if fast.Skipped() != 0 {
			t.Fatalf("fast viewer skipped %d frames", fast.Skipped())
		}
	})

	t.Run("concurrent reader", func(t *testing.T) {
		fast := join(t, hub, st("lobby"))
		defer hub.Leave(fast)
		if f := fast.TryNext(); f == nil || f.Seq != n { // the room's latest, at Join
			t.Fatalf("joining viewer's first frame is %v, want %d", f, n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		received := make(chan uint64, 1)
		go func() {
			var got uint64
			for {
				f, err := fast.Next(ctx)
				if err != nil {
					return
				}
				got++
				if f.Seq == 2*n {
					received <- got
					return
				}
			}
		}()
		start := time.Now()
		for seq := uint64(n + 1); seq <= 2*n; seq++ {
			publish(t, layer, "lobby", seq)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("publishing %d frames took %v", n, d)
		}
		select {
		case got := <-received:
			// Every frame was either received or skipped for a newer one.
			if got+fast.Skipped() != n {
				t.Fatalf("fast viewer received %d and skipped %d of %d frames", got, fast.Skipped(), n)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("fast viewer never received the last frame")
		}
	})

	// The stuck viewer holds at most MaxBehindFrames frames, in order,
	// the newest last, and skipped the rest.
	var held []uint64
	for f := stuck.TryNext(); f != nil; f = stuck.TryNext() {
		held = append(held, f.Seq)
	}
	if len(held) == 0 || len(held) > rooms.MaxBehindFrames || held[len(held)-1] != 2*n {
		t.Fatalf("stuck viewer holds %v, want at most %d frames ending with %d", held, rooms.MaxBehindFrames, 2*n)
	}
	for i := 1; i < len(held); i++ {
		if held[i] != held[i-1]+1 {
			t.Fatalf("stuck viewer holds %v, want consecutive frames", held)
		}
	}
	if got := stuck.Skipped(); got+uint64(len(held)) != 2*n {
		t.Fatalf("stuck viewer skipped %d and holds %d, want %d in all", got, len(held), 2*n)
	}
}

func TestLeave(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{})
	a := join(t, hub, st("lobby"))
	b := join(t, hub, st("lobby"))

	hub.Leave(a)
	publish(t, layer, "lobby", 1)
	if f := next(t, b, time.Second); f.Seq != 1 {
		t.Fatalf("remaining viewer got %d, want 1", f.Seq)
	}
	if f, err := waiting(a); err == nil {
		t.Fatalf("viewer that left got frame %d", f.Seq)
	}

	hub.Leave(b)
	hub.Leave(b) // idempotent
	if names := roomNames(hub); len(names) != 0 {
		t.Fatalf("Rooms() = %v after the last viewer left", names)
	}
	before := hub.Stats()
	publish(t, layer, "lobby", 2) // reaches nobody: the hub unsubscribed
	after := hub.Stats()
	if after.Relayed != before.Relayed || after.BadMessages != before.BadMessages {
		t.Fatalf("layer still delivers to the hub after the last viewer left: %+v then %+v", before, after)
	}
	if after.Rooms != 0 || after.Viewers != 0 {
		t.Fatalf("Stats() = %+v, want no rooms or viewers", after)
	}

	// Joining again subscribes again.
	c := join(t, hub, st("lobby"))
	publish(t, layer, "lobby", 3)
	if f := next(t, c, time.Second); f.Seq != 3 {
		t.Fatalf("viewer after rejoin got %d, want 3", f.Seq)
	}
}

func TestRoomWithOnlyAPublisher(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{})
	p, err := hub.NewPublisher(st("studio"))
	if err != nil {
		t.Fatal(err)
	}
	infos := hub.Streams()
	if len(infos) != 1 || infos[0].Stream.String() != "studio" || infos[0].Publishers != 1 || infos[0].Viewers != 0 {
		t.Fatalf("Rooms() = %+v, want studio with 1 publisher", infos)
	}
	// No local viewer: the hub is not subscribed.
	publish(t, layer, "studio", 1)
	if s := hub.Stats(); s.Relayed != 0 {
		t.Fatalf("hub with no viewers relayed %d messages", s.Relayed)
	}
	p.Close()
	p.Close() // idempotent
	if names := roomNames(hub); len(names) != 0 {
		t.Fatalf("Rooms() = %v after the only publisher left", names)
	}
}

func TestMaxRooms(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{MaxRooms: 2})
	join(t, hub, st("a"))
	p, err := hub.NewPublisher(st("b"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if _, err := hub.Join(context.Background(), st("c")); !errors.Is(err, rooms.ErrTooManyRooms) {
		t.Fatalf("Join of a third room: %v, want ErrTooManyRooms", err)
	}
	if _, err := hub.NewPublisher(st("c")); !errors.Is(err, rooms.ErrTooManyRooms) {
		t.Fatalf("NewPublisher of a third room: %v, want ErrTooManyRooms", err)
	}
	// Rooms the hub holds stay open to more viewers and publishers.
	join(t, hub, st("a"))
	join(t, hub, st("b"))
	p2, err := hub.NewPublisher(st("a"))
	if err != nil {
		t.Fatalf("NewPublisher of a held room: %v", err)
	}
	p2.Close()
	if got := roomNames(hub); strings.Join(got, ",") != "a,b" {
		t.Fatalf("Rooms() = %v, want [a b]", got)
	}

	// A failed Join leaves no trace.
	if s := hub.Stats(); s.Rooms != 2 {
		t.Fatalf("Stats().Rooms = %d, want 2", s.Rooms)
	}
}

func TestMaxRoomsFreedByLeave(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{MaxRooms: 1})
	a := join(t, hub, st("a"))
	if _, err := hub.Join(context.Background(), st("b")); !errors.Is(err, rooms.ErrTooManyRooms) {
		t.Fatalf("Join: %v, want ErrTooManyRooms", err)
	}
	hub.Leave(a)
	join(t, hub, st("b"))
}

func TestInstantFirstFrame(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{})
	first := join(t, hub, st("lobby"))
	publish(t, layer, "lobby", 1)
	publish(t, layer, "lobby", 2)
	for seq := uint64(1); seq <= 2; seq++ {
		if f := next(t, first, time.Second); f.Seq != seq {
			t.Fatalf("first viewer got %d, want %d", f.Seq, seq)
		}
	}

	late := join(t, hub, st("lobby"))
	f, err := waiting(late)
	if err != nil {
		t.Fatalf("new viewer of a live room has no frame when Join returns: %v", err)
	}
	if f.Seq != 2 {
		t.Fatalf("new viewer's first frame is %d, want the latest, 2", f.Seq)
	}
	if late.Skipped() != 0 {
		t.Fatalf("new viewer starts with %d skipped", late.Skipped())
	}
	if l := hub.Latest(st("lobby")); l == nil || l.Seq != 2 {
		t.Fatalf("Latest() = %v, want frame 2", l)
	}
	if info := hub.Streams(); len(info) != 1 || !info[0].Live || info[0].LastFrame.IsZero() {
		t.Fatalf("Rooms() = %+v, want lobby live with a last frame time", info)
	}

	// After an offline event the room is not live: no stale first frame.
	if err := layer.Publish(context.Background(), "lobby", frames.Offline(2, epoch).Binary()); err != nil {
		t.Fatal(err)
	}
	afterOffline := join(t, hub, st("lobby"))
	if f, err := waiting(afterOffline); err == nil {
		t.Fatalf("viewer joining an offline room got frame %d", f.Seq)
	}
	if hub.Latest(st("lobby")) != nil {
		t.Fatal("Latest() returns a frame of an offline room")
	}
	if hub.Latest(st("nowhere")) != nil {
		t.Fatal("Latest() of an unknown room is not nil")
	}
}

// TestInstantFirstFrameFromLocalPublisher: a replica whose only link to the
// room is a local publisher (no viewers, so not subscribed) still has the
// newest frame for a viewer that joins.
func TestInstantFirstFrameFromLocalPublisher(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{})
	p, err := hub.NewPublisher(st("studio"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.Send(frame(t, 9))
	v := join(t, hub, st("studio"))
	f, err := waiting(v)
	if err != nil || f.Seq != 9 {
		t.Fatalf("new viewer's first frame: %v, %v; want frame 9", f, err)
	}
}

func TestPublisherCloseSendsOffline(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{})
	v := join(t, hub, st("lobby"))
	p, err := hub.NewPublisher(st("lobby"))
	if err != nil {
		t.Fatal(err)
	}
	p.Send(frame(t, 5))
	if f := next(t, v, 2*time.Second); f.Seq != 5 {
		t.Fatalf("got %d, want 5", f.Seq)
	}
	p.Close()
	f := next(t, v, 2*time.Second)
	if f.Kind != frames.KindOffline || !f.IsOffline() {
		t.Fatalf("after Close the viewer got kind %d, want KindOffline", f.Kind)
	}
	if f.Seq != 5 {
		t.Fatalf("offline event carries seq %d, want the last frame's, 5", f.Seq)
	}
	if hub.Latest(st("lobby")) != nil {
		t.Fatal("room is still live after its publisher closed")
	}
	if info := hub.Streams(); len(info) != 1 || info[0].Live || info[0].Publishers != 0 || info[0].Viewers != 1 {
		t.Fatalf("Rooms() = %+v, want lobby with 1 viewer, not live", info)
	}
}

func TestPublisherCloseWithAnotherPublisher(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{})
	v := join(t, hub, st("lobby"))
	p1, err := hub.NewPublisher(st("lobby"))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := hub.NewPublisher(st("lobby"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p2.Close)
	p1.Send(frame(t, 1))
	if f := next(t, v, 2*time.Second); f.Seq != 1 {
		t.Fatalf("got %d", f.Seq)
	}
	p1.Close() // p2 still publishes: no offline event
	p2.Send(frame(t, 2))
	if f := next(t, v, 2*time.Second); f.IsOffline() || f.Seq != 2 {
		t.Fatalf("got seq %d offline %v, want frame 2", f.Seq, f.IsOffline())
	}
}

// blockingLayer is a test double of the Layer interface whose Publish
// blocks until released, like a frozen Redis: it checks the publisher's
// contract that Send never waits on the layer. It delivers nothing.
type blockingLayer struct {
	entered chan struct{} // receives each time Publish starts
	release chan struct{} // closed to let Publish return

	mu   sync.Mutex
	seqs []uint64 // seq of every message published after release
}

func newBlockingLayer() *blockingLayer {
	return &blockingLayer{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (l *blockingLayer) Publish(ctx context.Context, _ string, msg []byte) error {
	select {
	case l.entered <- struct{}{}:
	default:
	}
	select {
	case <-l.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	h, err := frames.ParseHeader(msg)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.seqs = append(l.seqs, h.Seq)
	l.mu.Unlock()
	return nil
}

func (l *blockingLayer) published() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint64(nil), l.seqs...)
}

func (*blockingLayer) Subscribe(context.Context, string, rooms.Handler) error { return nil }
func (*blockingLayer) Unsubscribe(context.Context, string) error              { return nil }
func (*blockingLayer) Ready(context.Context) error                            { return nil }
func (*blockingLayer) Close() error                                           { return nil }

var _ rooms.Layer = (*blockingLayer)(nil)

func TestPublisherSendNeverBlocks(t *testing.T) {
	const n = 1000
	layer := newBlockingLayer()
	hub := rooms.NewHub(layer, rooms.Options{PublishTimeout: time.Minute, Logger: quietLogger()})
	p, err := hub.NewPublisher(st("lobby"))
	if err != nil {
		t.Fatal(err)
	}
	p.Send(frame(t, 1))
	select {
	case <-layer.entered: // the publisher's goroutine is now stuck in the layer
	case <-time.After(2 * time.Second):
		t.Fatal("publisher never called the layer")
	}

	queued := make([]*frames.Frame, 0, n)
	for seq := uint64(2); seq <= n+1; seq++ {
		queued = append(queued, frame(t, seq))
	}
	sent := make(chan time.Duration)
	go func() {
		start := time.Now()
		for _, f := range queued {
			p.Send(f)
		}
		sent <- time.Since(start)
	}()
	select {
	case d := <-sent:
		t.Logf("%d sends with the layer blocked took %v", n, d)
	case <-time.After(3 * time.Second):
		t.Fatal("Send blocked while the layer was blocked")
	}
	const q = rooms.PublishQueueFrames
	if s := hub.Stats(); s.PublishDropped != n-q || s.Published != 0 {
		t.Fatalf("Stats() = %+v, want %d dropped, 0 published", s, n-q)
	}

	// Once the layer moves, the newest frames of the bounded queue go out,
	// in order, ending with the newest, and nothing else (frames that
	// waited past PublishQueueAge are dropped too, all but the newest).
	close(layer.release)
	testenv.WaitFor(t, 2*time.Second, "the newest frame to be published", func() error {
		if got := layer.published(); len(got) < 2 || got[len(got)-1] != n+1 {
			return fmt.Errorf("published seqs %v, want frame %d last", got, n+1)
		}
		return nil
	})
	got := layer.published()
	if len(got) > q+1 || got[0] != 1 {
		t.Fatalf("published %v: want frame 1, then at most %d queued frames", got, q)
	}
	for i := 2; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("published %v: queued frames out of order or with gaps", got)
		}
	}
	if s := hub.Stats(); s.Published != uint64(len(got)) || s.PublishDropped != n+1-uint64(len(got)) {
		t.Fatalf("Stats() = %+v after publishing %d frames of %d", s, len(got), n+1)
	}
	p.Close()
	if after := layer.published(); len(after) != len(got)+1 || after[len(got)] != n+1 {
		t.Fatalf("published %v, want an offline event with seq %d last", after, n+1)
	}
	if s := hub.Stats(); s.Published != uint64(len(got)) || s.PublishErrors != 0 {
		t.Fatalf("Stats() = %+v, want %d published (the offline event is not a frame), no errors", s, len(got))
	}
}

// TestPublisherCloseWhileLayerBlocked: Close returns even when the layer
// never answers, bounded by PublishTimeout.
func TestPublisherCloseWhileLayerBlocked(t *testing.T) {
	layer := newBlockingLayer()
	hub := rooms.NewHub(layer, rooms.Options{PublishTimeout: 200 * time.Millisecond, Logger: quietLogger()})
	p, err := hub.NewPublisher(st("lobby"))
	if err != nil {
		t.Fatal(err)
	}
	p.Send(frame(t, 1))
	<-layer.entered
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close hung on a blocked layer")
	}
}

// gatedLayer is a MemoryLayer whose Unsubscribe waits for the test to open
// its gate: an unsubscribe in flight, as Redis's can be.
type gatedLayer struct {
	*rooms.MemoryLayer
	entered chan struct{}
	gate    chan struct{}
}

func (l *gatedLayer) Unsubscribe(ctx context.Context, channel string) error {
	l.entered <- struct{}{}
	<-l.gate
	return l.MemoryLayer.Unsubscribe(ctx, channel)
}

// TestJoinWaitsForAnUnsubscribeInFlight is the regression test of a join
// that came while the last viewer's unsubscribe was in flight: it
// returned before the stream was subscribed again, and its first frame
// could be lost (a flake of TestLeave, 2 in 300 runs). Join now returns
// only once the stream is subscribed.
func TestJoinWaitsForAnUnsubscribeInFlight(t *testing.T) {
	layer := &gatedLayer{MemoryLayer: rooms.NewMemoryLayer(), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	hub := rooms.NewHub(layer, rooms.Options{FanoutShards: 1, Logger: quietLogger()})
	a := join(t, hub, st("lobby"))
	hub.Leave(a) // its unsubscribe starts, and waits at the gate
	select {
	case <-layer.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Leave never unsubscribed")
	}
	joined := make(chan *rooms.Viewer, 1)
	go func() { joined <- join(t, hub, st("lobby")) }()
	select {
	case <-joined:
		t.Fatal("Join returned while the unsubscribe was still in flight")
	case <-time.After(100 * time.Millisecond):
		// Join is waiting, as it must: nothing to poll for, the test is
		// that it has not returned.
	}
	close(layer.gate)
	var b *rooms.Viewer
	select {
	case b = <-joined:
	case <-time.After(10 * time.Second):
		t.Fatal("Join did not return once the unsubscribe finished")
	}
	publish(t, layer, "lobby", 1) // at once: Join promised the subscription
	if f := next(t, b, time.Second); f.Seq != 1 {
		t.Fatalf("viewer got %d, want 1", f.Seq)
	}
}
