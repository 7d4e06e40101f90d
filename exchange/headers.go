package exchange

import (
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// xMatch is a headers binding's match mode.
type xMatch uint8

const (
	matchAll xMatch = iota
	matchAny
	matchAllWithX
	matchAnyWithX
)

// parseXMatch maps an x-match value to a mode like RabbitMQ's route/3: only
// a string selects a mode; anything else (absent, another type, an unknown
// string) means all.
func parseXMatch(v any) xMatch {
	s, _ := v.(string)
	switch s {
	case "any":
		return matchAny
	case "any-with-x":
		return matchAnyWithX
	case "all-with-x":
		return matchAllWithX
	}
	return matchAll
}

// headerArg is one binding argument that takes part in matching. A nil val
// is void: it matches on the presence of the header.
type headerArg struct {
	key string
	val any
}

// headerSpec is a headers binding's arguments, pre-parsed at Bind.
//
// Invariant: args holds exactly the arguments the mode considers (never
// x-match; x- arguments only in the *-with-x modes), sorted by key so that
// evaluation is deterministic.
type headerSpec struct {
	any  bool // any or any-with-x; otherwise all or all-with-x
	args []headerArg
}

func parseHeaderSpec(args amqp.Table) headerSpec {
	mode := parseXMatch(args["x-match"])
	withX := mode == matchAllWithX || mode == matchAnyWithX
	spec := headerSpec{any: mode == matchAny || mode == matchAnyWithX}
	for k, v := range args {
		if k == "x-match" || (!withX && strings.HasPrefix(k, "x-")) {
			continue
		}
		spec.args = append(spec.args, headerArg{key: k, val: v})
	}
	slices.SortFunc(spec.args, func(a, b headerArg) int { return strings.Compare(a.key, b.key) })
	return spec
}

// match reports whether message headers h satisfy the spec. With no
// considered arguments, all matches and any does not (RabbitMQ's match_all
// and match_any on an empty list).
func (s *headerSpec) match(h amqp.Table) bool {
	for _, a := range s.args {
		v, ok := h[a.key]
		ok = ok && (a.val == nil || headerValueEqual(a.val, v))
		if ok == s.any {
			return ok // the first match decides any, the first miss decides all
		}
	}
	return !s.any
}

// headerValueEqual is the type-erased equality of the package documentation
// ("Headers matching"): integers by numeric value whatever their width or
// signedness, floats by float64 value, string and []byte by bytes, integers
// never equal to floats, containers element by element. It does not
// allocate.
func headerValueEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil // only reached inside arrays and nested tables
	case string:
		switch y := b.(type) {
		case string:
			return x == y
		case []byte:
			return x == string(y)
		}
		return false
	case []byte:
		switch y := b.(type) {
		case string:
			return string(x) == y
		case []byte:
			return string(x) == string(y)
		}
		return false
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case float32:
		y, ok := floatValue(b)
		return ok && float64(x) == y
	case float64:
		y, ok := floatValue(b)
		return ok && x == y
	case amqp.Decimal:
		y, ok := b.(amqp.Decimal)
		return ok && x == y
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case amqp.Table:
		return tableEqual(x, b)
	case map[string]any:
		return tableEqual(x, b)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !headerValueEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	xi, xok := intValue(a)
	yi, yok := intValue(b)
	return xok && yok && xi == yi
}

func tableEqual(x map[string]any, b any) bool {
	var y map[string]any
	switch t := b.(type) {
	case amqp.Table:
		y = t
	case map[string]any:
		y = t
	default:
		return false
	}
	if len(x) != len(y) {
		return false
	}
	for k, xv := range x {
		yv, ok := y[k]
		if !ok || !headerValueEqual(xv, yv) {
			return false
		}
	}
	return true
}

func floatValue(v any) (float64, bool) {
	switch f := v.(type) {
	case float32:
		return float64(f), true
	case float64:
		return f, true
	}
	return 0, false
}

// integer is an integer of any Go width and signedness: big holds values
// above math.MaxInt64 (only uint64 and uint reach them), small all others.
type integer struct {
	small int64
	big   uint64
}

func intValue(v any) (integer, bool) {
	switch n := v.(type) {
	case int8:
		return integer{small: int64(n)}, true
	case uint8:
		return integer{small: int64(n)}, true
	case int16:
		return integer{small: int64(n)}, true
	case uint16:
		return integer{small: int64(n)}, true
	case int32:
		return integer{small: int64(n)}, true
	case uint32:
		return integer{small: int64(n)}, true
	case int64:
		return integer{small: n}, true
	case int:
		return integer{small: int64(n)}, true
	case uint64:
		return fromUint(n), true
	case uint:
		return fromUint(uint64(n)), true
	}
	return integer{}, false
}

func fromUint(u uint64) integer {
	if u > math.MaxInt64 {
		return integer{big: u}
	}
	return integer{small: int64(u)}
}

// CheckBindArgs validates binding arguments for the kind. Only headers
// bindings are checked: x-match, when present, must be a string among all,
// any, all-with-x and any-with-x. The error's message is the text RabbitMQ
// sends after "PRECONDITION_FAILED - " (rabbit_exchange_type_headers
// validate_binding/2, with values printed the way Erlang's ~tp prints the
// decoded field; very long values are not line-wrapped as Erlang would).
func CheckBindArgs(kind Kind, args amqp.Table) error {
	if kind != Headers {
		return nil
	}
	v, ok := args["x-match"]
	if !ok {
		return nil
	}
	s, isString := v.(string)
	if !isString {
		return errors.New("Invalid x-match field type " + amqp.FieldTypeName(v) +
			" (value " + amqp.ErlangTerm(v) + "); expected longstr")
	}
	switch s {
	case "all", "any", "all-with-x", "any-with-x":
		return nil
	}
	return errors.New("Invalid x-match field value " + amqp.ErlangTerm(v) +
		"; expected all, any, all-with-x, or any-with-x")
}
