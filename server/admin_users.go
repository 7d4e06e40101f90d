package server

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/storage"
)

// adminState is the broker's administrative state: users, permissions and vhost metadata, plus the
// server-wide statistics and their sampler.
//
// mu guards the users, permissions, limits and vhost metadata (mu's fields). It is a leaf lock:
// nothing else is taken while it is held.
type adminState struct {
	// write serialises administrative changes (users, permissions, vhosts, limits) and is held
	// across their store write; mu guards the maps in it and is held only while they are read or
	// changed, never across I/O, since connection.open and every publish's permission check read
	// them. A writer reads the maps holding write alone (only writers change them) and takes mu to
	// change them, after its store write.
	write sync.Mutex
	mu    struct {
		sync.RWMutex
		users map[string]*user
		perms map[string]map[string]Permission // vhost -> user -> permission

		topicPerms map[string]map[string]map[string]TopicPermission // vhost -> user -> exchange -> permission
		limits     map[string]map[string]int64                      // vhost -> limit name -> value (admin_limits.go)
		meta       map[string]vhostMeta

		globals map[string]json.RawMessage // global runtime parameters (admin_globalparams.go)
	}

	patterns sync.Map // permission pattern -> *regexp.Regexp (access.go); no lock needed

	// gen is bumped (under mu, after the change) by every change of the maps above, so that a
	// channel may cache a permission check until it changes (access.go).
	gen atomic.Uint64

	stats       statSet // server-wide counters
	connRates   connRates
	samplerOnce sync.Once
	stopOnce    sync.Once
	stop        chan struct{}
}

// Hashing algorithms RabbitMQ names in definitions; SHA-256 is the default.
const (
	HashSHA256 = "rabbit_password_hashing_sha256"
	HashSHA512 = "rabbit_password_hashing_sha512"
	HashMD5    = "rabbit_password_hashing_md5"
)

// ErrNotFound is returned for a vhost, user, permission or other object that does not exist.
var ErrNotFound = errors.New("warren: object not found")

// ErrAuth is returned by Authenticate for bad credentials or a refused login.
var ErrAuth = errors.New("warren: login failed")

// BadRequestError is an administrative request the broker refuses because of its content. Reason is
// RabbitMQ's reason text where there is one; Term, if set, is the reason as RabbitMQ's API renders
// an Erlang term (a JSON array such as ["no_such_vhost","x"]).
type BadRequestError struct {
	Reason string
	Term   []any
}

func (e *BadRequestError) Error() string { return "warren: bad request: " + e.Reason }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Reason: fmt.Sprintf(format, args...)}
}

// UserInfo describes a user.
type UserInfo struct {
	Name             string
	PasswordHash     []byte // salt || hash, as in RabbitMQ's definitions
	HashingAlgorithm string
	Tags             []string
	Limits           map[string]int64 // max-connections, max-channels (admin_userlimits.go)
}

// HasTag reports whether the user has tag.
func (u UserInfo) HasTag(tag string) bool { return slices.Contains(u.Tags, tag) }

// Permission is a user's configure, write and read patterns in a vhost.
type Permission struct {
	User, Vhost            string
	Configure, Write, Read string
}

func (s *Server) initAdmin() {
	s.adm.mu.users = map[string]*user{}
	s.adm.mu.perms = map[string]map[string]Permission{}
	s.adm.mu.topicPerms = map[string]map[string]map[string]TopicPermission{}
	s.adm.mu.limits = map[string]map[string]int64{}
	s.adm.mu.meta = map[string]vhostMeta{}
	s.adm.stop = make(chan struct{})
	s.adm.mu.globals = map[string]json.RawMessage{}
}

// --- users ---

func (u *user) info() UserInfo {
	algo := u.algo
	if algo == "" {
		algo = HashSHA256
	}
	return UserInfo{Name: u.name, PasswordHash: slices.Clone(u.hash), HashingAlgorithm: algo, Tags: slices.Clone(u.tags), Limits: maps.Clone(u.limits)}
}

// lookupUser returns the user called name, or nil.
func (s *Server) lookupUser(name string) *user {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	return s.adm.mu.users[name]
}

// Authenticate checks a user's password as an AMQP login does, including the loopback restriction
// for remote (nil remote: no restriction). It returns ErrAuth on failure.
//
// A failure from remote is logged (never with the password) and counted by the failed-login
// limiter; past its limit, Authenticate returns only after Options.LoginFailureDelay (the caller's
// goroutine sleeps, as an AMQP connection's does). Every call counts as a login attempt of the
// management API ("http" in AuthAttempts).
func (s *Server) Authenticate(name, password string, remote net.Addr) (UserInfo, error) {
	u := s.lookupUser(name)
	var err error
	switch {
	case u == nil || !u.checkPassword(password):
		err = ErrAuth
	case remote != nil && s.loopback[name] && !isLoopback(remote):
		err = fmt.Errorf("%w: user '%s' can only connect via localhost", ErrAuth, name)
	default:
		s.authAttempts.http.record(true)
		return u.info(), nil
	}
	s.authAttempts.http.record(false)
	if remote != nil {
		reason := "invalid credentials for user '" + name + "'"
		if u != nil && err != ErrAuth {
			reason = "user '" + name + "' can only connect via localhost"
		}
		if d := s.logins.failed(remote, name, "HTTP basic", reason); d > 0 {
			time.Sleep(d)
		}
	}
	return UserInfo{}, err
}

// Users lists every user, sorted by name.
func (s *Server) Users() []UserInfo {
	s.adm.mu.RLock()
	out := make([]UserInfo, 0, len(s.adm.mu.users))
	for _, u := range s.adm.mu.users {
		out = append(out, u.info())
	}
	s.adm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// User returns the named user.
func (s *Server) User(name string) (UserInfo, error) {
	if u := s.lookupUser(name); u != nil {
		return u.info(), nil
	}
	return UserInfo{}, ErrNotFound
}

// UserSpec creates or updates a user. With Password set the password is hashed with SHA-256 and a
// new salt; with PasswordHash set it is taken as is (HashingAlgorithm names its algorithm); with
// neither, an existing user keeps its password and a new one gets none (it cannot log in with one).
type UserSpec struct {
	Name             string
	Password         *string
	PasswordHash     []byte
	HashingAlgorithm string
	Tags             []string
	// Limits, if not nil, are set on the user (each key replaces the one of that name; the others
	// are kept), as RabbitMQ's put_user does with a user's "limits".
	Limits map[string]int64
}

// putUserDirect creates or updates a user and reports whether it was created.
func (s *Server) putUserDirect(spec UserSpec) (created bool, err error) {
	if spec.Name == "" {
		return false, badRequest("user name must not be empty")
	}
	if err := checkUserLimits(spec.Limits); err != nil {
		return false, err
	}
	algo := spec.HashingAlgorithm
	if algo == "" {
		algo = HashSHA256
	}
	switch algo {
	case HashSHA256, HashSHA512, HashMD5:
	default:
		return false, badRequest("unsupported hashing algorithm '%s'", algo)
	}
	tags := make([]string, 0, len(spec.Tags))
	for _, t := range spec.Tags {
		if t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	old := s.adm.mu.users[spec.Name]
	u := &user{name: spec.Name, tags: tags, algo: algo}
	switch {
	case spec.Password != nil:
		u.algo = HashSHA256
		u.hash = hashPassword(newSalt(), *spec.Password)
	case spec.PasswordHash != nil:
		u.hash = slices.Clone(spec.PasswordHash)
	case old != nil:
		u.hash, u.algo = old.hash, old.algo
	}
	if old != nil {
		u.limits = old.limits
	}
	if len(spec.Limits) > 0 {
		u.limits = maps.Clone(u.limits)
		if u.limits == nil {
			u.limits = map[string]int64{}
		}
		maps.Copy(u.limits, spec.Limits)
	}
	var b storage.Batch
	b.Set(storage.UserKey(u.name), u.record())
	if err := s.commit.apply(&b); err != nil {
		return false, fmt.Errorf("storing user %q: %w", u.name, err)
	}
	s.admUpdate(func() { s.adm.mu.users[u.name] = u })
	return old == nil, nil
}

// deleteUserDirect removes a user and its permissions.
func (s *Server) deleteUserDirect(name string) error {
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	if s.adm.mu.users[name] == nil {
		return ErrNotFound
	}
	var b storage.Batch
	b.Delete(storage.UserKey(name))
	for vh, ps := range s.adm.mu.perms {
		if _, ok := ps[name]; ok {
			b.Delete(storage.PermissionKey(vh, name))
		}
	}
	forgetTopics := s.deleteTopicPermissionsLocked(&b, func(_, u string) bool { return u == name })
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting user %q: %w", name, err)
	}
	s.admUpdate(func() {
		forgetTopics()
		delete(s.adm.mu.users, name)
		for _, ps := range s.adm.mu.perms {
			delete(ps, name)
		}
	})
	return nil
}

func newSalt() []byte {
	salt := make([]byte, 4)
	if _, err := rand.Read(salt); err != nil {
		panic("crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return salt
}

// hashWith hashes password with salt under a RabbitMQ hashing algorithm.
func hashWith(algo string, salt []byte, password string) []byte {
	switch algo {
	case HashSHA512:
		h := sha512.New()
		h.Write(salt)
		h.Write([]byte(password))
		return h.Sum(append([]byte(nil), salt...))
	case HashMD5:
		h := md5.New()
		h.Write(salt)
		h.Write([]byte(password))
		return h.Sum(append([]byte(nil), salt...))
	}
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(append([]byte(nil), salt...))
}

// checkHash compares password against a stored salt || hash in constant time.
func checkHash(algo string, stored []byte, password string) bool {
	if len(stored) < 4 {
		return false
	}
	return subtle.ConstantTimeCompare(hashWith(algo, stored[:4], password), stored) == 1
}

// --- permissions ---

// Permissions lists every permission, sorted by vhost then user.
func (s *Server) Permissions() []Permission {
	s.adm.mu.RLock()
	var out []Permission
	for _, ps := range s.adm.mu.perms {
		for _, p := range ps {
			out = append(out, p)
		}
	}
	s.adm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Vhost != out[j].Vhost {
			return out[i].Vhost < out[j].Vhost
		}
		return out[i].User < out[j].User
	})
	return out
}

// Permission returns user's permission in vhost.
func (s *Server) Permission(vhost, user string) (Permission, error) {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	p, ok := s.adm.mu.perms[vhost][user]
	if !ok {
		return Permission{}, ErrNotFound
	}
	return p, nil
}

// putPermissionDirect sets user's permission in vhost and reports whether it was created. The patterns
// must be valid regular expressions; the vhost and the user must exist.
func (s *Server) putPermissionDirect(p Permission) (created bool, err error) {
	for _, re := range []string{p.Configure, p.Write, p.Read} {
		if _, err := regexp.Compile(re); err != nil {
			return false, badRequest("invalid_regexp: %v", err)
		}
	}
	if s.vhost(p.Vhost) == nil {
		return false, badRequest("vhost_or_user_not_found")
	}
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	if s.adm.mu.users[p.User] == nil {
		return false, badRequest("vhost_or_user_not_found")
	}
	_, existed := s.adm.mu.perms[p.Vhost][p.User]
	if err := s.putPermissionWriting(p); err != nil {
		return false, err
	}
	return !existed, nil
}

// putPermissionWriting stores p and installs it. The caller holds adm.write.
func (s *Server) putPermissionWriting(p Permission) error {
	var b storage.Batch
	b.Set(storage.PermissionKey(p.Vhost, p.User), p.record())
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("storing permission %s@%s: %w", p.User, p.Vhost, err)
	}
	s.admUpdate(func() {
		if s.adm.mu.perms[p.Vhost] == nil {
			s.adm.mu.perms[p.Vhost] = map[string]Permission{}
		}
		s.adm.mu.perms[p.Vhost][p.User] = p
	})
	return nil
}

// admUpdate runs fn, which changes the admin maps, under adm.mu. The caller holds adm.write.
func (s *Server) admUpdate(fn func()) {
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	fn()
	s.adm.gen.Add(1)
}

// deletePermissionDirect removes user's permission in vhost.
func (s *Server) deletePermissionDirect(vhost, user string) error {
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	if _, ok := s.adm.mu.perms[vhost][user]; !ok {
		return ErrNotFound
	}
	var b storage.Batch
	b.Delete(storage.PermissionKey(vhost, user))
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting permission %s@%s: %w", user, vhost, err)
	}
	s.admUpdate(func() { delete(s.adm.mu.perms[vhost], user) })
	return nil
}

// UserVhosts returns the vhosts user has a permission in.
func (s *Server) UserVhosts(user string) []string {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	var out []string
	for vh, ps := range s.adm.mu.perms {
		if _, ok := ps[user]; ok {
			out = append(out, vh)
		}
	}
	sort.Strings(out)
	return out
}
