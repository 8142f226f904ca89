// Package sender is the camera-side daemon of framecast: it captures frames
// from a camera, a video file, a stream URL or a generated test pattern,
// encodes them as JPEG and publishes them to a room of the gateway over one
// WebSocket, reconnecting forever.
//
// # Pipeline
//
// A Sender runs four goroutines, each owning its own state:
//
//	capture  --frameSlot-->  encode  --messageSlot-->  publish (WebSocket)
//	                                                   status (log line)
//
// What each goroutine does:
//
//   - capture reads the source as fast as the source delivers (a camera's own
//     rate, a file at its frame rate, the test pattern at the configured fps)
//     and stores each frame in a one-frame latest-wins slot. It never waits
//     for the encoder, so a camera's driver buffers never fill with stale
//     frames. A source that fails is closed and reopened with backoff.
//   - encode takes the newest frame at most fps times a second, downscales it
//     to the maximum width, encodes it as JPEG and wraps it in the wire
//     format (binary header, or the seed's data URL). While no WebSocket is
//     connected it encodes nothing.
//   - publish keeps one WebSocket to the gateway and writes the newest
//     message with a write timeout. When the socket is slower than the
//     encoder, newer messages replace unsent ones in the slot and the
//     replaced ones are counted as skipped: nothing is queued.
//   - status logs one line per interval with rates and counters.
//
// Both slots are latest-wins: the producer never blocks and the consumer
// always gets the newest item. State changes (source opened or lost,
// connected, disconnected) are logged; single frames never are.
package sender
