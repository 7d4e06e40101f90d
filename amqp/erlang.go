package amqp

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Erlang terms as RabbitMQ prints them in error texts and API reasons, so that Warren's wording is
// RabbitMQ's: erlBinary (~w of a frame's bytes, in connection errors), ErlangTerm (~tp of a decoded
// field value, in binding-argument errors) and ErlangTermHTML (~p of a JSON value, HTML-escaped,
// in the management API's validation reasons: server/policy.go, management/api_policies.go).

// maxErlBinary bounds the bytes erlBinary formats: reply texts are shortstrs
// (255 bytes), so more would only be truncated.
const maxErlBinary = 128

// erlBinary formats b as Erlang's ~w does, so error texts match RabbitMQ's:
// <<>> when empty, <<"text">> when every byte is printable Latin-1, and
// <<0,50,...>> otherwise. At most maxErlBinary bytes are shown; more are
// elided as "...".
func erlBinary(b []byte) string {
	var sb strings.Builder
	writeLatin1Binary(&sb, b, maxErlBinary)
	return sb.String()
}

// writeLatin1Binary writes b as Erlang's ~w and ~p print a binary: <<"text">> when every byte is
// printable Latin-1, the byte values otherwise; past limit bytes (limit < 0: none) it elides the
// rest as "...".
func writeLatin1Binary(sb *strings.Builder, b []byte, limit int) {
	if len(b) == 0 {
		sb.WriteString("<<>>")
		return
	}
	shown, more := b, ""
	if limit >= 0 && len(shown) > limit {
		shown, more = shown[:limit], "..."
	}
	sb.WriteString("<<")
	if erlPrintable(b) {
		sb.WriteByte('"')
		for _, c := range shown {
			switch c {
			case '"', '\\':
				sb.WriteByte('\\')
				sb.WriteByte(c)
			case '\n':
				sb.WriteString(`\n`)
			case '\r':
				sb.WriteString(`\r`)
			case '\t':
				sb.WriteString(`\t`)
			case '\v':
				sb.WriteString(`\v`)
			case '\b':
				sb.WriteString(`\b`)
			case '\f':
				sb.WriteString(`\f`)
			case 0x1b:
				sb.WriteString(`\e`)
			default:
				sb.WriteByte(c)
			}
		}
		sb.WriteString(more)
		sb.WriteString(`">>`)
		return
	}
	for i, c := range shown {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(int(c)))
	}
	if more != "" {
		sb.WriteString(",...")
	}
	sb.WriteString(">>")
}

// erlPrintable mirrors io_lib:printable_latin1_list on the bytes of b.
func erlPrintable(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 0x20 && c <= 0x7e, c >= 0xa0:
		case c == '\n', c == '\r', c == '\t', c == '\v', c == '\b', c == '\f', c == 0x1b:
		default:
			return false
		}
	}
	return true
}

// ErlangTerm renders a decoded field value as Erlang's ~tp prints
// RabbitMQ's representation of it: binaries as <<"...">>, void as
// undefined, timestamps as seconds, decimals as {Scale,Value}, tables as
// [{Key,Type,Value}] and arrays as [{Type,Value}].
func ErlangTerm(v any) string {
	var b strings.Builder
	writeTerm(&b, v)
	return b.String()
}

func writeTerm(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("undefined")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		writeBinary(b, x)
	case []byte:
		writeBinary(b, string(x))
	case float32:
		writeFloat(b, float64(x))
	case float64:
		writeFloat(b, x)
	case Decimal:
		b.WriteString("{" + strconv.Itoa(int(x.Scale)) + "," + strconv.Itoa(int(x.Value)) + "}")
	case time.Time:
		b.WriteString(strconv.FormatInt(x.Unix(), 10))
	case Table:
		writeTable(b, x)
	case map[string]any:
		writeTable(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("{" + FieldTypeName(e) + ",")
			writeTerm(b, e)
			b.WriteByte('}')
		}
		b.WriteByte(']')
	default:
		if s, ok := erlInteger(v); ok {
			b.WriteString(s)
			return
		}
		b.WriteString("undefined")
	}
}

// erlInteger prints an integer of any Go width and signedness.
func erlInteger(v any) (string, bool) {
	switch n := v.(type) {
	case int8:
		return strconv.FormatInt(int64(n), 10), true
	case uint8:
		return strconv.FormatInt(int64(n), 10), true
	case int16:
		return strconv.FormatInt(int64(n), 10), true
	case uint16:
		return strconv.FormatInt(int64(n), 10), true
	case int32:
		return strconv.FormatInt(int64(n), 10), true
	case uint32:
		return strconv.FormatInt(int64(n), 10), true
	case int64:
		return strconv.FormatInt(n, 10), true
	case int:
		return strconv.FormatInt(int64(n), 10), true
	case uint64:
		return strconv.FormatUint(n, 10), true
	case uint:
		return strconv.FormatUint(uint64(n), 10), true
	}
	return "", false
}

func writeTable(b *strings.Builder, t map[string]any) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys) // RabbitMQ keeps tables sorted by key
	b.WriteByte('[')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		writeBinary(b, k)
		b.WriteString("," + FieldTypeName(t[k]) + ",")
		writeTerm(b, t[k])
		b.WriteByte('}')
	}
	b.WriteByte(']')
}

// writeBinary prints s as an Erlang binary: <<"text">> when every byte is
// printable ASCII (or a character with an Erlang escape), <<"text"/utf8>>
// when s is printable UTF-8, and a list of byte values otherwise.
func writeBinary(b *strings.Builder, s string) {
	if s == "" {
		b.WriteString("<<>>")
		return
	}
	ascii, printable := true, utf8.ValidString(s)
	for _, r := range s {
		if r >= utf8.RuneSelf {
			ascii = false
		}
		if !unicode.IsPrint(r) && erlangEscape(r) == "" {
			printable = false
		}
	}
	if !printable {
		b.WriteString("<<")
		for i := 0; i < len(s); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(s[i])))
		}
		b.WriteString(">>")
		return
	}
	b.WriteString(`<<"`)
	for _, r := range s {
		if e := erlangEscape(r); e != "" {
			b.WriteString(e)
		} else {
			b.WriteRune(r)
		}
	}
	if ascii {
		b.WriteString(`">>`)
	} else {
		b.WriteString(`"/utf8>>`)
	}
}

func erlangEscape(r rune) string {
	switch r {
	case '"':
		return `\"`
	case '\\':
		return `\\`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case 0x1b:
		return `\e`
	case 0x7f:
		return `\d`
	}
	return ""
}

// writeFloat prints f like Erlang's ~p (io_lib_format:fwrite_g/1): the
// shortest digits that read back, in positional notation unless padding with
// zeros would be longer than an exponent (so 100.0 and 0.001 but 1.0e6).
// Only the common cases are checked against Erlang; the rest is best effort.
func writeFloat(b *strings.Builder, f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		return
	}
	if f == 0 {
		if math.Signbit(f) {
			b.WriteByte('-')
		}
		b.WriteString("0.0")
		return
	}
	if f < 0 {
		b.WriteByte('-')
		f = -f
	}
	// Digits ds and place: f = 0.ds × 10^place.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	ds := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	place := x + 1
	sci := func() {
		frac := ds[1:]
		if frac == "" {
			frac = "0"
		}
		b.WriteString(ds[:1] + "." + frac + "e" + strconv.Itoa(place-1))
	}
	cost := len(strconv.Itoa(place-1)) + 2 // the length of "e" + exponent, roughly
	switch {
	case place <= 0:
		if -place <= cost {
			b.WriteString("0." + strings.Repeat("0", -place) + ds)
		} else {
			sci()
		}
	case place >= len(ds):
		if pad := place - len(ds); pad <= cost {
			b.WriteString(ds + strings.Repeat("0", pad) + ".0")
		} else {
			sci()
		}
	default:
		b.WriteString(ds[:place] + "." + ds[place:])
	}
}

// ErlangTermHTML formats a JSON value as Erlang's ~p prints RabbitMQ's decoding of it, HTML-escaped
// (&, <, >) as RabbitMQ's management API returns validation reasons. The value is as the management
// API decodes JSON: nil (null), bool, string (a binary, printed as ~p prints Latin-1:
// <<"text">> or its bytes), int64, float64 or json.Number, []any (a list) and map[string]any or
// Table (a map, #{K => V,...} in key order). Long terms are not wrapped as ~p would wrap them.
func ErlangTermHTML(x any) string {
	var b strings.Builder
	writeJSONTerm(&b, x)
	return htmlEscaper.Replace(b.String())
}

// ErlangProplist formats a JSON value as Erlang's ~p prints it decoded with objects as proplists
// ([{K,V},...], keys in byte order), not HTML-escaped: the shape of the shovel plugin's validation
// texts. Otherwise as ErlangTermHTML.
func ErlangProplist(x any) string {
	var b strings.Builder
	writeJSONTermAs(&b, x, true)
	return b.String()
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func writeJSONTerm(b *strings.Builder, x any) { writeJSONTermAs(b, x, false) }

// writeJSONTermAs writes x; proplist prints objects as [{K,V},...] instead of maps.
func writeJSONTermAs(b *strings.Builder, x any, proplist bool) {
	switch v := x.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		writeLatin1Binary(b, []byte(v), -1)
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float64:
		writeFloat(b, v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			b.WriteString(strconv.FormatInt(i, 10))
		} else if f, err := v.Float64(); err == nil {
			writeFloat(b, f)
		} else {
			b.WriteString(v.String())
		}
	case []any:
		b.WriteByte('[')
		for i, y := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONTermAs(b, y, proplist)
		}
		b.WriteByte(']')
	case map[string]any:
		writeJSONMap(b, v, proplist)
	case Table:
		writeJSONMap(b, v, proplist)
	default:
		fmt.Fprint(b, v)
	}
}

// writeJSONMap writes a JSON object as the Erlang map RabbitMQ decodes it to (or, with proplist,
// the proplist): keys (binaries) in byte order.
func writeJSONMap(b *strings.Builder, m map[string]any, proplist bool) {
	keys := slices.Sorted(maps.Keys(m))
	if proplist {
		b.WriteByte('[')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('{')
			writeLatin1Binary(b, []byte(k), -1)
			b.WriteByte(',')
			writeJSONTermAs(b, m[k], true)
			b.WriteByte('}')
		}
		b.WriteByte(']')
		return
	}
	b.WriteString("#{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeLatin1Binary(b, []byte(k), -1)
		b.WriteString(" => ")
		writeJSONTermAs(b, m[k], false)
	}
	b.WriteByte('}')
}
