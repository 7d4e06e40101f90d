package mqtt

import (
	"errors"
	"strings"
)

// Topic errors.
var (
	errTopicEmpty    = errors.New("mqtt: empty topic")
	errTopicLong     = errors.New("mqtt: topic longer than 65535 bytes")
	errTopicUTF8     = errors.New("mqtt: topic is not well-formed UTF-8 or contains U+0000")
	errTopicWildcard = errors.New("mqtt: topic name contains a wildcard (+ or #)")
	errFilterHash    = errors.New("mqtt: # must be the last character of a topic filter and occupy a whole level")
	errFilterPlus    = errors.New("mqtt: + must occupy a whole level of a topic filter")
	errShared        = errors.New("mqtt: shared subscription must be $share/{ShareName}/{filter} with a non-empty share name without /, + or #")
)

// ValidTopicName checks a topic name (a PUBLISH's topic): at least one character, well-formed UTF-8
// without U+0000, no wildcard.
func ValidTopicName(name string) error {
	if len(name) == 0 {
		return errTopicEmpty
	}
	if len(name) > 65535 {
		return errTopicLong
	}
	if !validUTF8String(name) {
		return errTopicUTF8
	}
	if strings.ContainsAny(name, "+#") {
		return errTopicWildcard
	}
	return nil
}

func validTopicName(b []byte) error {
	if len(b) == 0 {
		return errTopicEmpty
	}
	for _, c := range b {
		if c == '+' || c == '#' {
			return errTopicWildcard
		}
	}
	return nil
}

// ValidTopicFilter checks a topic filter (a subscription): at least one character, well-formed
// UTF-8 without U+0000, '+' alone in its level, '#' alone in the last level. A shared subscription
// ($share/group/filter) is checked as ParseShared does.
func ValidTopicFilter(filter string) error {
	if len(filter) > 65535 {
		return errTopicLong
	}
	if !validUTF8String(filter) {
		return errTopicUTF8
	}
	if strings.HasPrefix(filter, sharePrefix) {
		_, _, err := ParseShared(filter)
		return err
	}
	return validFilter(filter)
}

func validFilter(f string) error {
	if len(f) == 0 {
		return errTopicEmpty
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '#':
			if i != len(f)-1 || (i > 0 && f[i-1] != '/') {
				return errFilterHash
			}
		case '+':
			if (i > 0 && f[i-1] != '/') || (i < len(f)-1 && f[i+1] != '/') {
				return errFilterPlus
			}
		}
	}
	return nil
}

const sharePrefix = "$share/"

// ParseShared splits a shared subscription "$share/{ShareName}/{filter}" (MQTT 5.0 section 4.8.2)
// into its share name and topic filter. ok is false when filter is not a shared subscription
// (does not start with "$share/"); err is set when it does but is not a valid one.
func ParseShared(filter string) (group, topicFilter string, err error) {
	rest, ok := strings.CutPrefix(filter, sharePrefix)
	if !ok {
		return "", "", errShared
	}
	group, topicFilter, ok = strings.Cut(rest, "/")
	if !ok || group == "" || strings.ContainsAny(group, "+#") {
		return "", "", errShared
	}
	if err := validFilter(topicFilter); err != nil {
		return "", "", err
	}
	return group, topicFilter, nil
}

// IsShared reports whether filter names a shared subscription (starts with "$share/").
func IsShared(filter string) bool { return strings.HasPrefix(filter, sharePrefix) }

// Match reports whether topic name matches topic filter (both assumed valid; a shared
// subscription's filter is matched after ParseShared). '+' matches one level, '#' the parent level
// and any number of levels below it; a filter starting with '+' or '#' does not match a name
// starting with '$' (MQTT 5.0 section 4.7.2).
func Match(filter, name string) bool {
	if len(name) > 0 && name[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		if filter == "#" {
			return true
		}
		fl, frest, fmore := strings.Cut(filter, "/")
		nl, nrest, nmore := strings.Cut(name, "/")
		if fl != "+" && fl != nl {
			return false
		}
		switch {
		case fmore && nmore:
			filter, name = frest, nrest
		case !fmore && !nmore:
			return true
		case fmore && !nmore:
			// "a/#" matches "a": the parent level.
			return frest == "#"
		default:
			return false
		}
	}
}
