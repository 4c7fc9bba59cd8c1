package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/svinit/svinit/internal/license"
)

// StatePrefix marks --license-state as a Secret ledger: k8s-secret:NAME.
const StatePrefix = "k8s-secret:"

// SecretName returns NAME of --license-state k8s-secret:NAME, or ok false for a journal file.
func SecretName(state string) (name string, ok bool) { return strings.CutPrefix(state, StatePrefix) }

// CheckSecretName reports whether name can name a Secret (a DNS subdomain).
func CheckSecretName(name string) error {
	if name == "" || len(name) > 253 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" ||
		!isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return fmt.Errorf("%q is not a Secret name: lower-case letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit", name)
	}
	return nil
}

func isAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

// Entry is one pod's record in the ledger: ids only, never the key.
type Entry struct {
	Pod    string `json:"pod"`
	PodUID string `json:"pod_uid"`
	license.Record
}

// Ledger keeps the license journal of every pod of a workload in one Secret of their
// namespace, an entry per pod keyed by its name and UID, so that an activation outlives a
// pod deleted for good or rescheduled, and the zombie sweeper of another pod can give it
// back. It is the license.Store of one pod.
type Ledger struct {
	c      *Client
	secret string
	pod    string
	uid    string
}

// NewLedger returns the ledger in the Secret name for the pod (name, UID).
func NewLedger(c *Client, secret, pod, uid string) *Ledger {
	return &Ledger{c: c, secret: secret, pod: pod, uid: uid}
}

// maxKey is the longest key a Secret's data allows.
const maxKey = 253

// entryKey is a pod's key in the Secret's data: its name and UID, characters a Secret key
// allows ([-._a-zA-Z0-9]). A name too long for a key is cut: the UID alone is unique, and
// the entry keeps the whole name.
func entryKey(pod, uid string) string {
	if n := maxKey - len(uid) - 1; len(pod) > n && n > 0 {
		pod = pod[:n]
	}
	return pod + "_" + uid
}

// Load implements license.Store: this pod's entry.
func (l *Ledger) Load(ctx context.Context) (license.Record, bool, error) {
	s, err := l.c.GetSecret(ctx, l.secret)
	if errors.Is(err, ErrNotFound) {
		return license.Record{}, false, nil
	}
	if err != nil {
		return license.Record{}, false, err
	}
	raw, ok := s.Data[entryKey(l.pod, l.uid)]
	if !ok {
		return license.Record{}, false, nil
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return license.Record{}, false, fmt.Errorf("ledger %s: entry %s: %w", l.secret, entryKey(l.pod, l.uid), err)
	}
	return e.Record, true, nil
}

// Save implements license.Store with a merge patch of this pod's key; the first pod creates
// the Secret.
func (l *Ledger) Save(ctx context.Context, rec license.Record) error {
	key := entryKey(l.pod, l.uid)
	value, err := json.Marshal(Entry{Pod: l.pod, PodUID: l.uid, Record: rec})
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := l.c.PatchSecretKey(ctx, l.secret, key, value)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		err = l.c.CreateSecret(ctx, l.secret, map[string][]byte{key: value})
		// Conflict: another pod created it first, patch that one; unless someone keeps
		// deleting it between our calls.
		if !errors.Is(err, ErrConflict) || attempt == 3 {
			return err
		}
	}
}

// Delete implements license.Store: this pod's key goes.
func (l *Ledger) Delete(ctx context.Context) error { return l.remove(ctx, entryKey(l.pod, l.uid)) }

func (l *Ledger) remove(ctx context.Context, key string) error {
	err := l.c.PatchSecretKey(ctx, l.secret, key, nil)
	if errors.Is(err, ErrNotFound) {
		return nil // no Secret: no entry
	}
	return err
}

// Others returns the entries of every other pod, sorted by key, each with whether its pod
// still exists with the recorded UID (Terminating included). When it does not (404, or a
// StatefulSet reused the name under another UID) the pod died without deactivating, and
// svinit's sweep gives its activation back. Entries that are not svinit's come back Foreign.
// When ctx ends before every pod was looked up, it returns those looked up so far and
// partial: a sweep then gives back what it found, rather than nothing at every start.
func (l *Ledger) Others(ctx context.Context) (others []license.LedgerEntry, partial bool, err error) {
	s, err := l.c.GetSecret(ctx, l.secret)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		if k != entryKey(l.pod, l.uid) { // ours: the Manager's reclaim handles it
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		var e Entry
		if err := json.Unmarshal(s.Data[key], &e); err != nil || e.Pod == "" {
			others = append(others, license.LedgerEntry{Key: key, Foreign: true})
			continue
		}
		uid, err := l.c.PodUID(ctx, e.Pod)
		switch {
		case ctx.Err() != nil:
			return others, true, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return nil, false, err
		}
		others = append(others, license.LedgerEntry{Key: key, Pod: e.Pod, PodUID: e.PodUID, Alive: err == nil && uid == e.PodUID, Record: e.Record})
	}
	return others, false, nil
}

// Put makes another pod's entry e: what a sweep could not give back of it.
func (l *Ledger) Put(ctx context.Context, e license.LedgerEntry) error {
	value, err := json.Marshal(Entry{Pod: e.Pod, PodUID: e.PodUID, Record: e.Record})
	if err != nil {
		return err
	}
	return l.c.PatchSecretKey(ctx, l.secret, e.Key, value)
}

// Remove deletes another pod's entry, once its activation is given back.
func (l *Ledger) Remove(ctx context.Context, key string) error { return l.remove(ctx, key) }
