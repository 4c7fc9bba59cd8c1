package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

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
	log    zerolog.Logger
}

// NewLedger returns the ledger in the Secret name for the pod (name, UID).
func NewLedger(c *Client, secret, pod, uid string, log zerolog.Logger) *Ledger {
	return &Ledger{c: c, secret: secret, pod: pod, uid: uid,
		log: log.With().Str("component", "ledger").Str("secret", c.Namespace()+"/"+secret).Logger()}
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

// Releaser gives back every activation another instance's record names, and returns what
// it could not give back: license.Manager.Release.
type Releaser interface {
	Release(ctx context.Context, rec license.Record) (left license.Record, err error)
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	Swept, Alive, Failed int
}

// Sweep is the zombie sweeper. For every entry of another pod it asks the API server
// whether that pod still exists with the recorded UID. When it does not (404, or a
// StatefulSet reused the name under another UID) the pod died without deactivating:
// Sweep gives its activation back with r and deletes its entry. Entries of pods that exist,
// Terminating ones included, are left alone, as are entries of another provider. Sweep
// stops when ctx ends; what is left waits for the next start.
func (l *Ledger) Sweep(ctx context.Context, provider string, r Releaser) (SweepResult, error) {
	var res SweepResult
	s, err := l.c.GetSecret(ctx, l.secret)
	if errors.Is(err, ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if key == entryKey(l.pod, l.uid) {
			continue // ours: the Manager's reclaim handles it
		}
		var e Entry
		if err := json.Unmarshal(s.Data[key], &e); err != nil || e.Pod == "" {
			l.log.Warn().Str("entry", key).Msg("ledger entry is not svinit's; left alone")
			continue
		}
		log := l.log.With().Str("pod", e.Pod).Str("pod_uid", e.PodUID).Str("activation_id", e.ActivationID).
			Strs("earlier_activation_ids", e.Earlier).Bool("by_instance", e.ByInstance).Int("pending", len(e.Pending)).
			Str("state", e.State).Logger()
		uid, err := l.c.PodUID(ctx, e.Pod)
		switch {
		case err == nil && uid == e.PodUID:
			res.Alive++
			continue
		case err != nil && !errors.Is(err, ErrNotFound):
			return res, err
		}
		if e.Provider != provider {
			log.Warn().Str("entry_provider", e.Provider).Msg("a dead pod's activation was made with another license provider; left for a person to deactivate")
			res.Failed++
			continue
		}
		if left, err := r.Release(ctx, e.Record); err != nil {
			log.Error().Err(err).Msg("cannot deactivate a dead pod's activation; the next start tries again")
			res.Failed++
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			// The entry keeps exactly what is left; should the patch fail, all of it.
			e.Record = left
			if value, err := json.Marshal(e); err == nil {
				if err := l.c.PatchSecretKey(ctx, l.secret, key, value); err != nil {
					log.Warn().Err(err).Msg("cannot narrow the entry to what is left; it keeps naming everything")
				}
			}
			continue
		}
		if err := l.remove(ctx, key); err != nil {
			return res, err
		}
		res.Swept++
		log.Info().Msg("deactivated the activation of a pod that died without giving it back")
	}
	return res, nil
}

// SweepFor runs Sweep bounded by d, logging the outcome; it never fails the start.
func (l *Ledger) SweepFor(ctx context.Context, d time.Duration, provider string, r Releaser) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	began := time.Now()
	res, err := l.Sweep(ctx, provider, r)
	ev := l.log.Info()
	if err != nil {
		ev = l.log.Warn().Err(err)
	}
	ev.Int("swept", res.Swept).Int("alive", res.Alive).Int("failed", res.Failed).Dur("elapsed_ms", time.Since(began)).
		Msg("zombie sweep done")
}
