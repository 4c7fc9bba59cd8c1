// Package account resolves --user USER[:GROUP] to the ids the child runs with, from
// /etc/passwd and /etc/group: a static binary has no NSS, and container images keep their
// users in those two files.
package account

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Account is who the child runs as.
type Account struct {
	Name   string // empty for a uid without a passwd entry
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups, GID first
	Home   string
}

// Files are the databases Lookup reads; tests point them elsewhere.
type Files struct{ Passwd, Group string }

// System is the container's own databases.
var System = Files{Passwd: "/etc/passwd", Group: "/etc/group"}

// Lookup resolves spec, USER[:GROUP], each a name or a number:
//   - a user name must have a passwd entry; a number may lack one, but then GROUP is needed
//     (guessing group 0, as some tools do, would hand the child root's group);
//   - without GROUP the child gets the user's primary group and every group of /etc/group
//     that lists the user, as login does; with GROUP it gets that group alone;
//   - HOME is the passwd entry's home directory, else "/".
func (f Files) Lookup(spec string) (Account, error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	if user == "" || (hasGroup && group == "") {
		return Account{}, fmt.Errorf("%q: want USER or USER:GROUP, names or numbers", spec)
	}
	users, err := readDB(f.Passwd, 7)
	if err != nil {
		return Account{}, err
	}
	var a Account
	entry, found := find(users, user)
	switch {
	case found:
		uid, gid, err := ids(f.Passwd, entry[2], entry[3])
		if err != nil {
			return Account{}, err
		}
		a = Account{Name: entry[0], UID: uid, GID: gid, Home: entry[5]}
	case !isNumber(user):
		return Account{}, fmt.Errorf("user %q: no such user in %s; use a user the image defines, or a number", user, f.Passwd)
	case !hasGroup:
		return Account{}, fmt.Errorf("user %s: no entry in %s, so its group is unknown; give one, e.g. --user %s:%s", user, f.Passwd, user, user)
	default:
		uid, err := number(user)
		if err != nil {
			return Account{}, err
		}
		a = Account{UID: uid}
	}
	if a.Home == "" {
		a.Home = "/"
	}
	groups, err := readDB(f.Group, 4)
	if err != nil {
		return Account{}, err
	}
	if hasGroup {
		g, found := find(groups, group)
		switch {
		case found:
			group = g[2]
		case !isNumber(group):
			return Account{}, fmt.Errorf("group %q: no such group in %s; use a group the image defines, or a number", group, f.Group)
		}
		if a.GID, err = number(group); err != nil {
			return Account{}, err
		}
		a.Groups = []uint32{a.GID}
		return a, nil
	}
	a.Groups = []uint32{a.GID}
	for _, g := range groups {
		if a.Name != "" && slices.Contains(strings.Split(g[3], ","), a.Name) {
			if gid, err := number(g[2]); err == nil && !slices.Contains(a.Groups, gid) {
				a.Groups = append(a.Groups, gid)
			}
		}
	}
	return a, nil
}

// readDB reads a colon-separated database, skipping comments and short lines. A missing
// file is an empty database: minimal images have none.
func readDB(path string, fields int) ([][]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if e := strings.Split(line, ":"); len(e) >= fields {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// find returns the entry named key, or for a number the first entry with that id.
func find(db [][]string, key string) ([]string, bool) {
	for _, e := range db {
		if e[0] == key || (isNumber(key) && e[2] == key) {
			return e, true
		}
	}
	return nil, false
}

func ids(path, uid, gid string) (uint32, uint32, error) {
	u, err := number(uid)
	if err == nil {
		var g uint32
		if g, err = number(gid); err == nil {
			return u, g, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: %w", path, err)
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

func number(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("id %q: want a number below 2^32", s)
	}
	return uint32(n), nil
}
