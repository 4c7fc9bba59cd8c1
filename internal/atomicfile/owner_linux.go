package atomicfile

import (
	"os"
	"syscall"

	"github.com/rs/zerolog"
)

// keepOwner gives the temporary file f the owner of the file it replaces, as sed -i does,
// so that a DST prepared for the program's user stays readable by it. Only root may do so;
// otherwise the file belongs to svinit's user, which is then the program's user too.
func keepOwner(f *os.File, dst string, log zerolog.Logger) {
	old, err := os.Lstat(dst)
	if err != nil || !old.Mode().IsRegular() {
		return
	}
	oldSt, ok1 := old.Sys().(*syscall.Stat_t)
	cur, err := f.Stat()
	if err != nil || !ok1 {
		return
	}
	curSt, ok2 := cur.Sys().(*syscall.Stat_t)
	if !ok2 || (oldSt.Uid == curSt.Uid && oldSt.Gid == curSt.Gid) {
		return
	}
	if err := f.Chown(int(oldSt.Uid), int(oldSt.Gid)); err != nil {
		log.Debug().Err(err).Str("dst", dst).Uint32("uid", oldSt.Uid).Uint32("gid", oldSt.Gid).Msg("owner of the replaced file not kept")
	}
}
