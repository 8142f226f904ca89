package redislayer

import (
	"context"
	"fmt"
	"log/slog"
)

// RedisLogger adapts a slog.Logger to go-redis's logger interface, for
// redis.SetLogger. go-redis logs every failed dial while Redis is down
// ("failed to dial after 5 attempts"); the layers already log the outage
// once and recovery once, so these lines go to Debug.
type RedisLogger struct{ Logger *slog.Logger }

// Printf logs one go-redis message at Debug level.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.Logger.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
