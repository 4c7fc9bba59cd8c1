package supervisor

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/account"
	"github.com/svinit/svinit/internal/proctest"
)

// The main goroutine keeps the main thread, the one thread the Go runtime never ends (it
// parks it instead), so that the threads these tests watch end are never it.
func init() { runtime.LockOSThread() }

// The promise: the program lives exactly as long as svinit's hold on it. It is not killed
// when the thread of whichever goroutine asked for it ends (golang/go#27505), and it gets
// SIGKILL when the thread that forked it ends, which startOnOwnThread keeps until release,
// as it would when svinit dies; also when it runs as another user.
func TestChildLivesAsLongAsItsSpawningThread(t *testing.T) {
	users := []*account.Account{nil}
	if os.Geteuid() == 0 {
		users = append(users, &account.Account{UID: 1234, GID: 1234})
	}
	for _, user := range users {
		t.Run("user="+strconv.FormatBool(user != nil), func(t *testing.T) {
			type started struct {
				pid, tid int
				release  func()
				err      error
			}
			ch := make(chan started)
			go func() {
				runtime.LockOSThread() // this thread ends with this goroutine
				pid, release, err := startOnOwnThread(func() (int, error) {
					return spawn([]string{"sleep", "60"}, []string{"PATH=/usr/bin:/bin"}, user, nil)
				})
				ch <- started{pid, unix.Gettid(), release, err}
			}()
			s := <-ch
			if s.err != nil {
				t.Fatal(s.err)
			}
			t.Cleanup(func() { unix.Kill(s.pid, unix.SIGKILL); unix.Wait4(s.pid, nil, 0, nil) })
			proctest.Poll(t, 10*time.Second, "the asking goroutine's thread to end", func() bool {
				_, err := os.Stat("/proc/self/task/" + strconv.Itoa(s.tid))
				return os.IsNotExist(err)
			})
			var ws unix.WaitStatus
			if got, err := unix.Wait4(s.pid, &ws, unix.WNOHANG, nil); got != 0 || err != nil {
				t.Fatalf("the child ended with the asking thread: wait4 %d %v, status %v", got, err, ws)
			}
			s.release()
			proctest.Poll(t, 10*time.Second, "the child to end with its thread", func() bool {
				got, _ := unix.Wait4(s.pid, &ws, unix.WNOHANG, nil)
				return got == s.pid
			})
			if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
				t.Errorf("child status %v, want killed by SIGKILL", ws)
			}
		})
	}
}
