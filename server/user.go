package server

import (
	"crypto/rand"
	"crypto/sha256"
)

// user is a broker user. Passwords are kept as RabbitMQ keeps them: a 4-byte salt followed by
// SHA-256(salt || password) (rabbit_password_hashing_sha256).
type user struct {
	name string
	hash []byte // salt(4) || sha256(salt || password)
	tags []string
	algo string // hashing algorithm (HashSHA256, ...); "" means SHA-256
	// limits are the user's limits (max-connections, max-channels; admin_userlimits.go); nil: none.
	// Never changed in place: a change replaces the user.
	limits map[string]int64
	// direct marks the user "none" of a direct connection (direct.go): no password, access to
	// every vhost and resource, as RabbitMQ's rabbit_auth_backend_dummy user.
	direct bool
}

func newUser(name, password string, tags ...string) *user {
	salt := make([]byte, 4)
	if _, err := rand.Read(salt); err != nil {
		panic("crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return &user{name: name, hash: hashPassword(salt, password), tags: tags}
}

func hashPassword(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(append([]byte(nil), salt...))
}

// checkPassword compares in constant time.
func (u *user) checkPassword(password string) bool {
	return checkHash(u.algo, u.hash, password)
}
