package rooms

import (
	"context"

	"github.com/framecast/framecast/pkg/frames"
)

// FrameCache supplies the newest frame of a JPEG stream that this replica
// holds no frame of in memory: a viewer joining such a stream sees an image
// at once instead of waiting for the publisher's next frame
// (jpegPolicy.join).
type FrameCache interface {
	// Latest returns stream's newest cached frame, or nil and no error
	// when there is none. It must return within ctx's deadline.
	Latest(ctx context.Context, stream frames.Stream) (*frames.Frame, error)
}
