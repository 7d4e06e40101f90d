package management

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/server"
)

// JSON in RabbitMQ's shapes. Objects are map[string]any (encoding/json sorts their keys); rates are
// always floats (0.0, not 0), as RabbitMQ writes them.

// rate is a float that is always encoded with a decimal point.
type rate float64

func (r rate) MarshalJSON() ([]byte, error) {
	f := float64(r)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	f = math.Round(f*10) / 10 // RabbitMQ rounds rates to one decimal
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return []byte(s), nil
}

func details(s server.Stat) map[string]any { return map[string]any{"rate": rate(s.Rate)} }

// putStat sets name and name_details.
func putStat(m map[string]any, name string, s server.Stat) {
	m[name] = s.Count
	m[name+"_details"] = details(s)
}

// Which message_stats keys an object reports, as RabbitMQ's objects do.
var (
	queueStatKeys    = []string{"publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "ack", "redeliver", "deliver_get"}
	exchangeStatKeys = []string{"publish_in", "publish_out"}
	channelStatKeys  = []string{"publish", "confirm", "return_unroutable", "drop_unroutable", "deliver", "deliver_no_ack",
		"get", "get_no_ack", "get_empty", "ack", "redeliver", "deliver_get"}
	vhostStatKeys = channelStatKeys
)

func messageStats(ms server.MessageStats, keys []string) map[string]any {
	m := map[string]any{}
	for _, k := range keys {
		var s server.Stat
		switch k {
		case "publish":
			s = ms.Publish
		case "publish_in":
			s = ms.PublishIn
		case "publish_out":
			s = ms.PublishOut
		case "confirm":
			s = ms.Confirm
		case "return_unroutable":
			s = ms.ReturnUnroutable
		case "drop_unroutable":
			s = ms.DropUnroutable
		case "deliver":
			s = ms.Deliver
		case "deliver_no_ack":
			s = ms.DeliverNoAck
		case "get":
			s = ms.Get
		case "get_no_ack":
			s = ms.GetNoAck
		case "get_empty":
			s = ms.GetEmpty
		case "ack":
			s = ms.Ack
		case "redeliver":
			s = ms.Redeliver
		case "deliver_get":
			s = ms.DeliverGet()
		}
		putStat(m, k, s)
	}
	return m
}

// --- AMQP tables and JSON ---

// tableJSON converts a field table to JSON values; never nil ({} for an empty table).
func tableJSON(t amqp.Table) map[string]any {
	m := make(map[string]any, len(t))
	for k, v := range t {
		m[k] = valueJSON(v)
	}
	return m
}

func valueJSON(v any) any {
	switch v := v.(type) {
	case nil, bool, string:
		return v
	case int8, uint8, int16, uint16, int32, uint32, int64, int, uint:
		return v
	case uint64:
		return v
	case float32:
		return floatJSON(float64(v))
	case float64:
		return floatJSON(v)
	case amqp.Decimal:
		return floatJSON(float64(v.Value) / math.Pow10(int(v.Scale)))
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return v // base64, as encoding/json writes []byte
	case time.Time:
		return v.Unix()
	case amqp.Table:
		return tableJSON(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = valueJSON(x)
		}
		return out
	}
	return fmt.Sprint(v)
}

func floatJSON(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return f
}

// jsonToTable converts a JSON object from a request into a field table: strings are longstr,
// integers long, other numbers double, objects tables and arrays arrays, as RabbitMQ's API does.
func jsonToTable(m map[string]any) (amqp.Table, error) {
	t := make(amqp.Table, len(m))
	for k, v := range m {
		x, err := jsonToValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		t[k] = x
	}
	return t, nil
}

func jsonToValue(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string:
		return v, nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, badRequest("bad number %s", v)
		}
		return f, nil
	case map[string]any:
		return jsonToTable(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := jsonToValue(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	}
	return nil, badRequest("unsupported value %v", v)
}

// --- bindings ---

// quotePlus is mochiweb's quote_plus, which RabbitMQ uses for properties_key: letters, digits and
// ".-~_" stay, a space becomes "+", every other byte is %XX (upper case).
func quotePlus(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '~', c == '_':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func quoteBinding(s string) string { return strings.ReplaceAll(quotePlus(s), "~", "%7E") }

// propertiesKey names a binding in URLs as RabbitMQ does: the quoted routing key, and when there are
// arguments "~" and a hash of them. RabbitMQ hashes the arguments' Erlang term with phash2; Warren
// hashes their canonical AMQP encoding (FNV-1a, 32 bits), so the keys of bindings with arguments
// differ from RabbitMQ's but are just as stable.
func propertiesKey(key string, args amqp.Table) string {
	if len(args) == 0 {
		if key == "" {
			return "~"
		}
		return quoteBinding(key)
	}
	return quoteBinding(key) + "~" + quoteBinding(argsHash(args))
}

func argsHash(args amqp.Table) string {
	b, err := amqp.AppendTable(nil, args) // sorted keys: equal tables give equal bytes
	if err != nil {
		b = []byte(fmt.Sprint(args))
	}
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	enc := []byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
	return base64.RawURLEncoding.EncodeToString(enc) // rabbit_misc:base64url
}

func bindingJSON(b server.BindingInfo) map[string]any {
	return map[string]any{
		"source": b.Source, "vhost": b.Vhost, "destination": b.Destination, "destination_type": b.DestinationType,
		"routing_key": b.RoutingKey, "arguments": tableJSON(b.Arguments), "properties_key": propertiesKey(b.RoutingKey, b.Arguments),
	}
}

// bindingLocation is the Location RabbitMQ sends for a new binding: relative, the destination's name
// and the properties key, each escaped for a URL path.
func bindingLocation(dest, key string, args amqp.Table) string {
	return url.PathEscape(dest) + "/" + url.PathEscape(propertiesKey(key, args))
}

// --- message properties ---

// propertiesJSON renders basic properties as RabbitMQ's API does; no property at all is [] (an
// empty Erlang proplist), as RabbitMQ answers.
func propertiesJSON(p amqp.Properties) any {
	m := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("content_type", p.ContentType)
	set("content_encoding", p.ContentEncoding)
	if p.Headers != nil {
		m["headers"] = tableJSON(p.Headers)
	}
	if p.DeliveryMode != 0 {
		m["delivery_mode"] = p.DeliveryMode
	}
	if p.Priority != 0 {
		m["priority"] = p.Priority
	}
	set("correlation_id", p.CorrelationID)
	set("reply_to", p.ReplyTo)
	set("expiration", p.Expiration)
	set("message_id", p.MessageID)
	if !p.Timestamp.IsZero() {
		m["timestamp"] = p.Timestamp.Unix()
	}
	set("type", p.Type)
	set("user_id", p.UserID)
	set("app_id", p.AppID)
	set("cluster_id", p.ClusterID)
	if len(m) == 0 {
		return []any{}
	}
	return m
}

// jsonProperties reads the properties object of a publish request. Unknown keys are ignored, as
// RabbitMQ ignores them.
func jsonProperties(m map[string]any) (amqp.Properties, error) {
	var p amqp.Properties
	f := fields(m)
	var err error
	str := func(key string, dst *string) {
		if err != nil {
			return
		}
		v, ok := m[key]
		if !ok || v == nil {
			return
		}
		s, isStr := v.(string)
		if !isStr {
			err = badRequestTerm("not_string", key)
			return
		}
		*dst = s
	}
	small := func(key string, dst *uint8) {
		if err != nil {
			return
		}
		if _, ok := m[key]; !ok {
			return
		}
		n, ierr := f.int(key, 0)
		if ierr != nil {
			err = ierr
			return
		}
		if n < 0 || n > 255 {
			err = badRequestTerm("not_int", key)
			return
		}
		*dst = uint8(n)
	}
	str("content_type", &p.ContentType)
	str("content_encoding", &p.ContentEncoding)
	small("delivery_mode", &p.DeliveryMode)
	small("priority", &p.Priority)
	str("correlation_id", &p.CorrelationID)
	str("reply_to", &p.ReplyTo)
	str("expiration", &p.Expiration)
	str("message_id", &p.MessageID)
	str("type", &p.Type)
	str("user_id", &p.UserID)
	str("app_id", &p.AppID)
	str("cluster_id", &p.ClusterID)
	if err != nil {
		return p, err
	}
	if _, ok := m["timestamp"]; ok {
		ts, err := f.int("timestamp", 0)
		if err != nil {
			return p, err
		}
		p.Timestamp = time.Unix(ts, 0).UTC()
	}
	if h, ok := m["headers"]; ok && h != nil {
		hm, isObj := h.(map[string]any)
		if !isObj {
			return p, badRequestTerm("not_table", "headers")
		}
		t, err := jsonToTable(hm)
		if err != nil {
			return p, err
		}
		p.Headers = t
	}
	for _, s := range []string{p.ContentType, p.ContentEncoding, p.CorrelationID, p.ReplyTo, p.Expiration, p.MessageID,
		p.Type, p.UserID, p.AppID, p.ClusterID} {
		if len(s) > 255 {
			return p, badRequest("property value longer than 255 bytes")
		}
	}
	return p, nil
}
