package exitcode

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		ws   unix.WaitStatus
		want int
	}{
		{0, 0},
		{unix.WaitStatus(3 << 8), 3},
		{unix.WaitStatus(255 << 8), 255},
		{unix.WaitStatus(unix.SIGTERM), 143},
		{unix.WaitStatus(unix.SIGKILL), 137},
		{unix.WaitStatus(unix.SIGKILL | 0x80), 137}, // core dumped
	} {
		if got := Of(tc.ws); got != tc.want {
			t.Errorf("Of(%#x) = %d, want %d", int(tc.ws), got, tc.want)
		}
	}
	if got := Signaled(unix.SIGINT); got != 130 {
		t.Errorf("Signaled(SIGINT) = %d, want 130", got)
	}
}
