package exchange

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqp"
)

// This file renders field values the way RabbitMQ prints them in error
// texts, so that CheckBindArgs returns RabbitMQ's exact wording.

// erlangTerm renders a decoded field value as Erlang's ~tp prints
// RabbitMQ's representation of it: binaries as <<"...">>, void as
// undefined, timestamps as seconds, decimals as {Scale,Value}, tables as
// [{Key,Type,Value}] and arrays as [{Type,Value}].
func erlangTerm(v any) string {
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
	case amqp.Decimal:
		b.WriteString("{" + strconv.Itoa(int(x.Scale)) + "," + strconv.Itoa(int(x.Value)) + "}")
	case time.Time:
		b.WriteString(strconv.FormatInt(x.Unix(), 10))
	case amqp.Table:
		writeTable(b, x)
	case map[string]any:
		writeTable(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("{" + amqp.FieldTypeName(e) + ",")
			writeTerm(b, e)
			b.WriteByte('}')
		}
		b.WriteByte(']')
	default:
		if n, ok := intValue(v); ok {
			if n.big != 0 {
				b.WriteString(strconv.FormatUint(n.big, 10))
			} else {
				b.WriteString(strconv.FormatInt(n.small, 10))
			}
			return
		}
		b.WriteString("undefined")
	}
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
		b.WriteString("," + amqp.FieldTypeName(t[k]) + ",")
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
