package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/recording/store"
)

// What an S3 answer means to the store, by S3 error code.
var (
	// codesFull: the server has no room (a quota, a full disk).
	codesFull = map[string]bool{
		"QuotaExceeded": true, "XMinioStorageFull": true, "StorageFull": true,
		"InsufficientStorage": true, "XAmzStorageFull": true,
	}
	// codesDenied: the server refuses the credentials or the access.
	codesDenied = map[string]bool{
		"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
		"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
		"AllAccessDisabled": true, "AccountProblem": true,
		"XAdminUserNotFound": true, // versitygw's answer to an unknown access key
	}
	// codesPermanent: this request can never succeed; retrying is useless.
	codesPermanent = map[string]bool{
		"EntityTooLarge": true, "KeyTooLongError": true, "InvalidObjectName": true,
		"InvalidArgument": true, "MethodNotAllowed": true, "NotImplemented": true,
		"MetadataTooLarge": true, "InvalidBucketName": true,
	}
)

// classify wraps an S3 client error with the store sentinel it means:
// ErrNotFound, ErrBadRange, ErrFull, or ErrUnavailable for anything that
// may pass (the server down, slow, overloaded, refusing the credentials,
// the bucket gone). Other answers (a bad request) are returned as they
// are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: S3 did not answer in time: %w", store.ErrUnavailable, err)
	}
	r := minio.ToErrorResponse(err)
	switch {
	case r.Code == "NoSuchKey" || r.Code == "NotFound" || r.StatusCode == http.StatusNotFound && r.Code == "":
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case r.Code == "InvalidRange" || r.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%w: %w", store.ErrBadRange, err)
	case codesFull[r.Code] || r.StatusCode == http.StatusInsufficientStorage:
		return fmt.Errorf("%w: S3 has no room (%s): %w", store.ErrFull, r.Code, err)
	case codesDenied[r.Code] || r.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: S3 refuses the credentials or the access (%s): check AWS_ACCESS_KEY_ID, "+
			"AWS_SECRET_ACCESS_KEY or the credentials file, and the bucket's policy: %w", store.ErrUnavailable, codeOf(r), err)
	case r.Code == "NoSuchBucket":
		return fmt.Errorf("%w: the bucket does not exist: %w", store.ErrUnavailable, err)
	case codesPermanent[r.Code]:
		return err
	case r.StatusCode == 0 && r.Code == "":
		// Not an answer: the connection failed (refused, reset, timed out).
		return fmt.Errorf("%w: S3 cannot be reached: %w", store.ErrUnavailable, err)
	case r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests || r.Code == "SlowDown" || r.Code == "RequestTimeout":
		return fmt.Errorf("%w: S3 answers %s: %w", store.ErrUnavailable, codeOf(r), err)
	}
	return err
}

func codeOf(r minio.ErrorResponse) string {
	if r.Code != "" {
		return r.Code
	}
	return fmt.Sprintf("HTTP %d", r.StatusCode)
}

// denied reports whether err is S3 refusing the credentials or access.
func denied(err error) bool {
	r := minio.ToErrorResponse(err)
	return codesDenied[r.Code] || r.StatusCode == http.StatusForbidden
}

// transient reports whether a failed write may succeed later, so that its
// bytes are worth keeping in the buffer: the server down or slow, full,
// refusing the credentials (rotated keys come back), the bucket missing.
func transient(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrFull)
}

// redisError wraps a Redis error with the store sentinel it means.
func redisError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("%w (no such journal)", store.ErrNotFound)
	case errors.Is(err, context.Canceled):
		return err
	case strings.HasPrefix(err.Error(), "OOM "):
		return fmt.Errorf("%w: Redis is at its maxmemory: %w", store.ErrFull, err)
	}
	return fmt.Errorf("%w: Redis: %w", store.ErrUnavailable, err)
}
