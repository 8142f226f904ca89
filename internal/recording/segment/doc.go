// Package segment is the on-disk format of recordings: one stream (a
// room's layer 0 in one codec) cut into segments, each a standard
// fragmented MP4 that ffprobe, ffmpeg and VLC open, and that reads back
// into exactly the frames that were recorded.
//
// A segment is:
//
//	[ftyp][moov]        the MP4 init (mediacommon's fmp4.Init): one video
//	                    track, H.264 (the stream's SPS and PPS) or M-JPEG
//	                    (the pictures' size), 90 kHz
//	[uuid header]       framecast's: room, codec, start, size, and for H.264
//	                    the configuration message in effect
//	then per part:
//	[uuid part][moof][mdat]
//	                    the part box lists every message of the part, in
//	                    order: kind, sequence number, capture time (Unix µs)
//	                    and what the MP4 cannot hold (configurations whole;
//	                    start codes other than 00 00 00 01); moof and mdat
//	                    (mediacommon's fmp4.Part) hold the pictures as MP4
//	                    samples (H.264 in AVCC form), timed from the capture
//	                    times
//	[uuid index]        when the segment ended: where each part is, so that
//	                    a reader can fetch any part by byte range
//
// (see boxes.go for the byte layouts). Every framecast box ends with a
// CRC-32C, and the part box holds one of its moof and mdat, so a reader
// can tell a whole part from a torn or damaged one.
//
// Parts last at most Options.PartMax (1 s): a part ends at 1 s, before
// every H.264 keyframe (with the configuration in front of it), and at the
// segment's end. A recorder appends each part to the open segment's
// journal as Flush returns it, so a crash loses at most the part being
// filled. Segments last about Options.Target (10 s): an H.264 segment
// begins at a configuration or keyframe, a JPEG one at any frame, and a
// new one begins at the first such frame after the target, after a pause
// of the publisher (Options.MaxGap) or when the configuration or picture
// size changes. Offline events are not recorded: a gap is the absence of
// frames.
//
// Writer turns frames into segment bytes; Read, ReadInit, ReadParts and
// ReadIndex turn them back into frames; Repair seals the journal of a
// recorder that died; NewClip and Export make a progressive MP4 for
// download.
//
// Concurrency: a Writer belongs to one goroutine (the stream's recorder).
// The readers, Repair and NewClip share no state and may run from any
// number of goroutines; a Clip is immutable. Frames returned by the
// readers own their bytes (they do not alias the data read).
package segment
