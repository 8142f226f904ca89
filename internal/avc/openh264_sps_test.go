package avc

// SPS units written by internal/h264enc (OpenH264 2.3.1), logged by its tests
// TestEncodeClipDecodesWithForcedKeyframes (1280×720 at 30 fps) and
// TestEncodeCroppedSize (640×360 at 15 fps).
const (
	openH264SPS720 = "6742c01f8c8d402802dd00f08846a0"
	openH264SPS360 = "6742c0168c8d405017bcb00f08846a"
)
