// Package avc reads the parts of an H.264 (AVC) byte stream that a relay needs
// without decoding pictures: it splits an Annex-B access unit into NAL units,
// tells keyframes (IDR access units) from delta frames, finds the sequence and
// picture parameter sets, and parses a sequence parameter set far enough to give
// the WebCodecs codec string (avc1.PPCCLL) and the picture size.
//
// It is pure Go (no cgo), so the gateway can import it. Every function is safe
// for concurrent use: none keeps state, and none modifies its input. Results
// that are byte slices alias the input unless the doc comment says otherwise.
//
// Every malformed input gives an error that wraps ErrMalformed, so a caller can
// tell a bad stream (errors.Is(err, avc.ErrMalformed)) from its own mistakes.
package avc
