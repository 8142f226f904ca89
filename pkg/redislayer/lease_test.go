package redislayer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/redislayer"
)

// TestLeases: one holder at a time; renewal and release only by the
// holder; an unrenewed lease passes to another after its TTL; a server
// that forgot the scripts (SCRIPT FLUSH, a restart) is taught them again.
func TestLeases(t *testing.T) {
	r := testenv.StartRedis(t)
	client := scClient(t, r)
	prefix := "leasetest:" + t.Name() + ":"
	a := redislayer.NewLeases(client, redislayer.LeaseOptions{KeyPrefix: prefix, Holder: "a"})
	b := redislayer.NewLeases(client, redislayer.LeaseOptions{KeyPrefix: prefix, Holder: "b"})
	ctx := context.Background()
	names := []string{"record/cam1", "record/cam2"}
	const ttl = 300 * time.Millisecond

	want := func(what string, got []bool, err error, want ...bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
		}
	}
	got, err := a.Acquire(ctx, names[:1], ttl)
	want("a acquires cam1", got, err, true)
	got, err = b.Acquire(ctx, names, ttl)
	want("b acquires both", got, err, false, true)
	got, err = a.Acquire(ctx, names[:1], ttl)
	want("a acquires cam1 again (its own)", got, err, true)
	got, err = b.Renew(ctx, names, ttl)
	want("b renews both", got, err, false, true)
	if err := b.Release(ctx, names); err != nil { // cam1 is a's: left alone
		t.Fatal(err)
	}
	if v, err := client.Get(ctx, a.Key(names[0])).Result(); err != nil || v != "a" {
		t.Fatalf("cam1 after b's release: %q, %v; want a's", v, err)
	}
	if n, _ := client.Exists(ctx, b.Key(names[1])).Result(); n != 0 {
		t.Fatal("cam2 still held after its holder released it")
	}

	// a stops renewing: b gets cam1 once the TTL has passed, and a can
	// neither renew nor release it any more.
	testenv.WaitFor(t, 5*time.Second, "b takes over cam1", func() error {
		got, err := b.Acquire(ctx, names[:1], ttl)
		if err != nil {
			return err
		}
		if !got[0] {
			return errors.New("still a's")
		}
		return nil
	})
	got, err = a.Renew(ctx, names[:1], ttl)
	want("a renews cam1 after losing it", got, err, false)
	if err := a.Release(ctx, names[:1]); err != nil {
		t.Fatal(err)
	}
	if v, _ := client.Get(ctx, a.Key(names[0])).Result(); v != "b" {
		t.Fatalf("cam1 = %q after a's release; want b's", v)
	}

	if _, err := r.Command("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	got, err = b.Renew(ctx, names[:1], ttl)
	want("renew after SCRIPT FLUSH", got, err, true)
}
