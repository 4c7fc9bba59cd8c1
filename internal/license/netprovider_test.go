package license

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// A helper that dies without its answer (the OOM killer, a crash) may have sent the
// activation: the attempt is retried, and the seat it may hold is given back.
func TestHelperWithoutAnAnswerMayHaveActivated(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := helper{cfg: HelperConfig{Path: exe, Env: []string{helperEnv + "=1"}, Runner: cmdRunner{}}, redact: NewRedactor()}
	p := &netProvider{h: h, name: ProviderKeygenRelay}
	_, err = p.Activate(context.Background(), "pod-a") // FAKE_REPLY unset: an empty line, no JSON
	if !errors.Is(err, ErrRetryable) || !errors.Is(err, ErrUncertain) {
		t.Errorf("Activate = %v; want a retryable error whose outcome is unknown", err)
	}
}

// svinit-net succeeded, but svinit cannot read the lease it answered: the server may hold a
// seat all the same, so it is given back.
func TestUnreadableAnswerMayHaveActivated(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := helper{cfg: HelperConfig{Path: exe, Env: []string{helperEnv + "=1", `FAKE_REPLY={"lease":{"id":"a","expires":"year 57971"}}`}, Runner: cmdRunner{}}, redact: NewRedactor()}
	_, err = (&netProvider{h: h, name: ProviderHTTP}).Activate(context.Background(), "pod-a")
	if !errors.Is(err, ErrUncertain) {
		t.Errorf("Activate = %v; want an error whose outcome is unknown", err)
	}
}

// What svinit-net encodes, svinit reads back whole: any year, a TTL to the nanosecond, and a
// new license's file with its key, even an empty one, which replaces the old key.
func TestLeaseJSONRoundTrips(t *testing.T) {
	prev := Lease{ID: "old", TTL: time.Minute, File: []byte("FILE1"), FileKey: "KEY1"}
	for _, l := range []Lease{
		{ID: "act-1", TTL: 1500 * time.Millisecond, Expires: time.Date(57971, 2, 25, 0, 0, 0, 0, time.UTC)},
		{ID: "act-2", File: []byte("FILE2")},
		{ID: "act-3", File: []byte("FILE3"), FileKey: "KEY3"},
	} {
		b, err := LeaseJSON(l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseLease("test", b, prev, NewRedactor())
		want := l
		if len(l.File) == 0 {
			want.File, want.FileKey = prev.File, prev.FileKey // an extension keeps the license
		}
		if err != nil || got.ID != want.ID || got.TTL != want.TTL || !got.Expires.Equal(want.Expires) ||
			string(got.File) != string(want.File) || got.FileKey != want.FileKey {
			t.Errorf("%s: read back %+v, %v; want %+v", b, got, err, want)
		}
	}
	if _, err := LeaseJSON(Lease{TTL: -time.Second}); err == nil {
		t.Error("a negative TTL was encoded")
	}
}

// A copy into the capped buffer (io.Copy, as the runners do) keeps the cap.
func TestCappedBufferCapsCopies(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.Write(make([]byte, 1<<20))
		w.Close()
	}()
	b := &cappedBuffer{max: 1000}
	io.Copy(b, r)
	if len(b.Bytes()) != 1000 || !b.overflow {
		t.Errorf("kept %d bytes, overflow %v; want 1000 and true", len(b.Bytes()), b.overflow)
	}
}
