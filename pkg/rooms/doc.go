// Package rooms holds a gateway's local streams, their viewers and
// publishers, and the channel layers that carry frames between gateway
// replicas.
//
// # Streams
//
// A room's video travels as streams (frames.Stream: the room, a layer, a
// codec): JPEG layer 0 is the main stream every older client receives,
// other JPEG layers and every H.264 layer are streams of their own. The
// channel layer sees each stream as a channel named by the stream
// (Redis channel prefix + frames.Stream.String()), so a replica subscribes
// to a layer only while a local viewer receives it.
//
// A Hub is the meeting point: publishers hand it frames, it publishes each
// frame once to the channel layer, and the layer delivers it back to every
// replica subscribed to the stream. A replica subscribes to a stream while
// it has at least one local viewer (or tap) of it, so each frame crosses
// the layer once per interested replica, never once per viewer.
//
// # Codecs are policies of a stream
//
// Everything that differs between a JPEG and an H.264 stream is one
// codecPolicy value owned by the stream (jpeg.go, h264.go): how a lagging
// viewer skips (any JPEG frame alone; H.264 by whole groups of pictures,
// resuming at a keyframe), what a joining viewer starts from (the newest
// JPEG frame; the current group of pictures, in memory or from the layer),
// what a publisher's queue may drop, and keyframe requests. Nothing else
// in the package asks which codec a stream has.
//
// # Never blocking
//
// Fan-out never blocks: each viewer has a short latest-frame-wins queue
// (at most MaxBehindFrames frames spanning MaxBehind for JPEG; see the
// H.264 bounds in h264.go), and each publisher a bounded queue in front of
// the layer, sent as one pipeline per round trip, so a stuck viewer or a
// frozen Redis costs skipped frames, counted, and nothing else. The offers
// to a stream's viewers run on a few fan-out shards, one per core by
// default (fanout.go), each keeping its viewers' frames in order. A tap
// (Hub.Tap: a recorder) sees every frame the layer delivers, in order, on
// the delivering goroutine.
//
// # Room budgets
//
// Options.MaxRooms bounds the rooms a hub holds, and Options.MaxIdleRooms,
// within it, the rooms held without a known publisher, which anyone may
// ask for where watching is open (budget.go): rooms with a live publisher
// anywhere, as this replica's publishers, the layer's pictures and
// Options.Liveness (presence) tell it, always find the rest.
//
// # Lock order
//
// A goroutine holding one of these locks takes only locks later in the
// list:
//
//	Publisher.mu     a publisher's queue and its codec state
//	stream.mu        a stream's codec state (the H.264 group of pictures):
//	                 orders a joining viewer's start against deliveries
//	Hub.subMu        the subscription state of every channel
//	Hub.mu           the streams, each stream's viewer set, taps and
//	                 publishers (writes; the sets are read without it),
//	                 the rooms and their budgets
//	fanoutShard.mu   a shard's queue of streams to notify
//	Viewer.mu        a viewer's queue and its codec state
//
// No lock is held across a channel-layer call, a notify callback that may
// block, or a tap.
package rooms
