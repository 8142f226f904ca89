//go:build unix

package fdlimit

import (
	"fmt"
	"syscall"
)

// Raise sets the soft open-file limit to the hard limit, if it is lower,
// and returns the limit in force. On error the limit is unchanged and
// returned as it is. It is meant to run once, at start.
func Raise() (Limit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return Limit{}, fmt.Errorf("failed to read the open-file limit: %w", err)
	}
	cur := Limit{Soft: rl.Cur, Hard: rl.Max}
	if rl.Cur >= rl.Max {
		return cur, nil
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return cur, fmt.Errorf("failed to raise the open-file limit from %d to %d: %w", cur.Soft, cur.Hard, err)
	}
	return Limit{Soft: rl.Max, Hard: rl.Max}, nil
}
