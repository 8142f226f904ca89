//go:build !unix

package fdlimit

import "errors"

// Raise is not supported outside Unix: it returns an error and a zero Limit.
func Raise() (Limit, error) {
	return Limit{}, errors.New("failed to raise the open-file limit: not supported on this system")
}
