package storage

import "fmt"

// Key spaces for the broker's administrative records: virtual hosts, users and permissions.
const (
	prefixVhost      = 'V'
	prefixUser       = 'U'
	prefixPermission = 'P'
)

// VhostKey is the key of a virtual host's record.
func VhostKey(name string) []byte { return appendName([]byte{prefixVhost}, name) }

// UserKey is the key of a user's record.
func UserKey(name string) []byte { return appendName([]byte{prefixUser}, name) }

// PermissionKey is the key of the permissions of user in vhost. A vhost's permissions form one range.
func PermissionKey(vhost, user string) []byte {
	return appendName(appendName([]byte{prefixPermission}, vhost), user)
}

// VhostPrefix, UserPrefix and PermissionPrefix select every record of one kind.
func VhostPrefix() []byte      { return []byte{prefixVhost} }
func UserPrefix() []byte       { return []byte{prefixUser} }
func PermissionPrefix() []byte { return []byte{prefixPermission} }

// ParseVhostKey and ParseUserKey return the name in a vhost or user key.
func ParseVhostKey(key []byte) (string, error) { return parseSingleName(key, prefixVhost) }
func ParseUserKey(key []byte) (string, error)  { return parseSingleName(key, prefixUser) }

// ParsePermissionKey splits a permission key into vhost and user.
func ParsePermissionKey(key []byte) (vhost, user string, err error) {
	if len(key) < 1 || key[0] != prefixPermission {
		return "", "", fmt.Errorf("storage: malformed permission key %q", key)
	}
	return ParseEntityKey(key)
}

func parseSingleName(key []byte, prefix byte) (string, error) {
	if len(key) < 1 || key[0] != prefix {
		return "", fmt.Errorf("storage: malformed key %q", key)
	}
	name, rest, err := ParseName(key[1:])
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("storage: trailing bytes in key %q", key)
	}
	return name, nil
}

// Key spaces added for access control: topic permissions and per-vhost limits.
const (
	prefixTopicPermission = 'T'
	prefixVhostLimit      = 'L'
)

// TopicPermissionKey is the key of user's topic permission on exchange in vhost.
func TopicPermissionKey(vhost, user, exchange string) []byte {
	return appendName(appendName(appendName([]byte{prefixTopicPermission}, vhost), user), exchange)
}

// TopicPermissionPrefix selects every topic permission.
func TopicPermissionPrefix() []byte { return []byte{prefixTopicPermission} }

// ParseTopicPermissionKey splits a topic permission key into vhost, user and exchange.
func ParseTopicPermissionKey(key []byte) (vhost, user, exchange string, err error) {
	if len(key) < 1 || key[0] != prefixTopicPermission {
		return "", "", "", fmt.Errorf("storage: malformed topic permission key %q", key)
	}
	rest := key[1:]
	var names [3]string
	for i := range names {
		if names[i], rest, err = ParseName(rest); err != nil {
			return "", "", "", fmt.Errorf("storage: topic permission key %q: %w", key, err)
		}
	}
	if len(rest) != 0 {
		return "", "", "", fmt.Errorf("storage: trailing bytes in key %q", key)
	}
	return names[0], names[1], names[2], nil
}

// VhostLimitKey is the key of a vhost's limits record.
func VhostLimitKey(vhost string) []byte { return appendName([]byte{prefixVhostLimit}, vhost) }

// VhostLimitPrefix selects every vhost's limits.
func VhostLimitPrefix() []byte { return []byte{prefixVhostLimit} }

// ParseVhostLimitKey returns the vhost in a limits key.
func ParseVhostLimitKey(key []byte) (string, error) { return parseSingleName(key, prefixVhostLimit) }

// Policies: 'O' records, one per (vhost, policy name). A vhost's policies form one range.
const prefixPolicy = 'O' // ('L' is taken by the vhost limits)

// PolicyKey is the key of the policy name in vhost.
func PolicyKey(vhost, name string) []byte {
	return appendName(appendName([]byte{prefixPolicy}, vhost), name)
}

// PolicyPrefix selects every policy record.
func PolicyPrefix() []byte { return []byte{prefixPolicy} }

// ParsePolicyKey splits a policy key into vhost and name.
func ParsePolicyKey(key []byte) (vhost, name string, err error) {
	if len(key) < 1 || key[0] != prefixPolicy {
		return "", "", fmt.Errorf("storage: malformed policy key %q", key)
	}
	return ParseEntityKey(key)
}

// Global runtime parameters ('G', by name) and operator policies ('W', by vhost and name).
const (
	prefixGlobalParameter = 'G'
	prefixOperatorPolicy  = 'W'
)

// GlobalParameterKey is the key of the global parameter name.
func GlobalParameterKey(name string) []byte { return appendName([]byte{prefixGlobalParameter}, name) }

// GlobalParameterPrefix selects every global parameter.
func GlobalParameterPrefix() []byte { return []byte{prefixGlobalParameter} }

// ParseGlobalParameterKey returns the name in a global parameter key.
func ParseGlobalParameterKey(key []byte) (string, error) {
	return parseSingleName(key, prefixGlobalParameter)
}

// OperatorPolicyKey is the key of the operator policy name in vhost.
func OperatorPolicyKey(vhost, name string) []byte {
	return appendName(appendName([]byte{prefixOperatorPolicy}, vhost), name)
}

// OperatorPolicyPrefix selects every operator policy record.
func OperatorPolicyPrefix() []byte { return []byte{prefixOperatorPolicy} }

// ParseOperatorPolicyKey splits an operator policy key into vhost and name.
func ParseOperatorPolicyKey(key []byte) (vhost, name string, err error) {
	if len(key) < 1 || key[0] != prefixOperatorPolicy {
		return "", "", fmt.Errorf("storage: malformed operator policy key %q", key)
	}
	return ParseEntityKey(key)
}

// Runtime parameters: 'R' records, one per (component, vhost, name).
const prefixParameter = 'R'

// ParameterKey is the key of the runtime parameter name of component in vhost.
func ParameterKey(component, vhost, name string) []byte {
	return appendName(appendName(appendName([]byte{prefixParameter}, component), vhost), name)
}

// ParameterPrefix selects every runtime parameter.
func ParameterPrefix() []byte { return []byte{prefixParameter} }

// ParseParameterKey splits a parameter key into component, vhost and name.
func ParseParameterKey(key []byte) (component, vhost, name string, err error) {
	if len(key) < 1 || key[0] != prefixParameter {
		return "", "", "", fmt.Errorf("storage: malformed parameter key %q", key)
	}
	rest := key[1:]
	var names [3]string
	for i := range names {
		if names[i], rest, err = ParseName(rest); err != nil {
			return "", "", "", fmt.Errorf("storage: parameter key %q: %w", key, err)
		}
	}
	if len(rest) != 0 {
		return "", "", "", fmt.Errorf("storage: trailing bytes in key %q", key)
	}
	return names[0], names[1], names[2], nil
}
