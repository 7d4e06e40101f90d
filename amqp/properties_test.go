package amqp

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func allProperties() Properties {
	return Properties{
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		Headers:         Table{"x-death": []any{Table{"count": int64(1)}}, "retry": int32(3)},
		DeliveryMode:    2,
		Priority:        9,
		CorrelationID:   "corr",
		ReplyTo:         "amq.rabbitmq.reply-to",
		Expiration:      "60000",
		MessageID:       "msg-1",
		Timestamp:       time.Unix(1700000000, 0).UTC(),
		Type:            "order.created",
		UserID:          "guest",
		AppID:           "shop",
		ClusterID:       "c1",
	}
}

func TestPropertiesRoundTripAll(t *testing.T) {
	p := allProperties()
	raw, err := p.Append([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	raw = raw[1:]
	if raw[0] != 0xFF || raw[1] != 0xFC {
		t.Fatalf("flags %x, want fffc", raw[:2])
	}
	got, err := DecodeProperties(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !propsEqual(p, got) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, p)
	}
	if m, err := RawDeliveryMode(raw); err != nil || m != 2 {
		t.Fatalf("RawDeliveryMode = %d, %v", m, err)
	}
	if h, err := RawHeaders(raw); err != nil || !h.Equal(p.Headers) {
		t.Fatalf("RawHeaders = %v, %v", h, err)
	}
}

// TestPropertiesEachAlone sets each property alone, so each flag bit and
// each position in the list is checked.
func TestPropertiesEachAlone(t *testing.T) {
	all := allProperties()
	for i, set := range []func(*Properties){
		func(p *Properties) { p.ContentType = all.ContentType },
		func(p *Properties) { p.ContentEncoding = all.ContentEncoding },
		func(p *Properties) { p.Headers = all.Headers },
		func(p *Properties) { p.DeliveryMode = all.DeliveryMode },
		func(p *Properties) { p.Priority = all.Priority },
		func(p *Properties) { p.CorrelationID = all.CorrelationID },
		func(p *Properties) { p.ReplyTo = all.ReplyTo },
		func(p *Properties) { p.Expiration = all.Expiration },
		func(p *Properties) { p.MessageID = all.MessageID },
		func(p *Properties) { p.Timestamp = all.Timestamp },
		func(p *Properties) { p.Type = all.Type },
		func(p *Properties) { p.UserID = all.UserID },
		func(p *Properties) { p.AppID = all.AppID },
		func(p *Properties) { p.ClusterID = all.ClusterID },
	} {
		var p Properties
		set(&p)
		raw, err := p.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if flags := uint16(raw[0])<<8 | uint16(raw[1]); flags != 1<<(15-i) {
			t.Errorf("property %d: flags %016b", i, flags)
		}
		got, err := DecodeProperties(raw)
		if err != nil || !propsEqual(p, got) {
			t.Errorf("property %d: decoded %+v, %v", i, got, err)
		}
		mode, err := RawDeliveryMode(raw)
		if err != nil || mode != p.DeliveryMode {
			t.Errorf("property %d: RawDeliveryMode %d, %v", i, mode, err)
		}
		h, err := RawHeaders(raw)
		if err != nil || !h.Equal(p.Headers) {
			t.Errorf("property %d: RawHeaders %v, %v", i, h, err)
		}
		// Every strict prefix is malformed.
		for n := 0; n < len(raw); n++ {
			if _, err := DecodeProperties(raw[:n]); err == nil {
				t.Fatalf("property %d: prefix %d decoded", i, n)
			} else {
				asError(t, err, SyntaxError)
			}
		}
	}
}

func TestPropertiesGoldenBytes(t *testing.T) {
	p := Properties{ContentType: "t", DeliveryMode: 2, Timestamp: time.Unix(1, 0)}
	raw, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "9040" + "0174" + "02" + "0000000000000001"
	if got := hex.EncodeToString(raw); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	empty, _ := (&Properties{}).Append(nil)
	if !bytes.Equal(empty, []byte{0, 0}) {
		t.Fatalf("empty = %x", empty)
	}
}

func TestPropertiesEmptyHeadersStayPresent(t *testing.T) {
	raw, _ := (&Properties{Headers: Table{}}).Append(nil)
	p, err := DecodeProperties(raw)
	if err != nil || p.Headers == nil {
		t.Fatalf("headers %v, %v", p.Headers, err)
	}
	again, _ := p.Append(nil)
	if !bytes.Equal(raw, again) {
		t.Fatalf("%x != %x", raw, again)
	}
}

func TestPropertiesContinuationFlags(t *testing.T) {
	// Content-type flag + continuation, then an empty continuation word.
	raw := []byte{0x80, 0x01, 0x00, 0x00, 1, 'x'}
	p, err := DecodeProperties(raw)
	if err != nil || p.ContentType != "x" {
		t.Fatalf("got %+v, %v", p, err)
	}
	if m, err := RawDeliveryMode(raw); err != nil || m != 0 {
		t.Fatalf("RawDeliveryMode = %d, %v", m, err)
	}
}

func TestDecodePropertiesMalformed(t *testing.T) {
	for name, raw := range map[string][]byte{
		"empty":                     nil,
		"one byte":                  {0x80},
		"reserved bit":              {0x00, 0x02},
		"continuation missing":      {0x00, 0x01},
		"continuation with flags":   {0x00, 0x01, 0x80, 0x00},
		"continuation chain cut":    {0x00, 0x01, 0x00, 0x01},
		"content-type overruns":     {0x80, 0x00, 9, 'x'},
		"headers 4GiB":              {0x20, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3},
		"headers bad value":         {0x20, 0x00, 0, 0, 0, 3, 1, 'k', '?'},
		"delivery-mode missing":     {0x10, 0x00},
		"timestamp truncated":       {0x00, 0x40, 0, 0, 0},
		"cluster-id after all good": {0x00, 0x04, 3, 'a'},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeProperties(raw)
			e := asError(t, err, SyntaxError)
			t.Log(e)
		})
	}
	// The raw accessors reject what they have to read.
	for name, raw := range map[string][]byte{
		"flags":              {0x10},
		"content-type":       {0x90, 0x00, 5},
		"headers length":     {0x30, 0x00, 0, 0, 0, 9},
		"delivery-mode":      {0x10, 0x00},
		"encoding overrun":   {0x50, 0x00, 7, 'a'},
		"reserved flag":      {0x10, 0x02, 2},
		"continuation flags": {0x10, 0x01, 0x00, 0x10, 2},
	} {
		if _, err := RawDeliveryMode(raw); err == nil {
			t.Errorf("RawDeliveryMode %s: no error", name)
		} else {
			asError(t, err, SyntaxError)
		}
	}
	for name, raw := range map[string][]byte{
		"flags":        {0x20},
		"content-type": {0xA0, 0x00, 5},
		"headers":      {0x20, 0x00, 0, 0, 0, 9},
		"bad value":    {0x20, 0x00, 0, 0, 0, 3, 1, 'k', '?'},
	} {
		if _, err := RawHeaders(raw); err == nil {
			t.Errorf("RawHeaders %s: no error", name)
		} else {
			asError(t, err, SyntaxError)
		}
	}
}

func TestRawAccessorsSkipOtherProperties(t *testing.T) {
	// A headers table that would fail to decode does not stop RawDeliveryMode,
	// which skips it by length.
	raw := []byte{0x30, 0x00, 0, 0, 0, 3, 1, 'k', '?', 2}
	if m, err := RawDeliveryMode(raw); err != nil || m != 2 {
		t.Fatalf("RawDeliveryMode = %d, %v", m, err)
	}
	if h, err := RawHeaders([]byte{0x10, 0x00, 2}); err != nil || h != nil {
		t.Fatalf("RawHeaders absent = %v, %v", h, err)
	}
}

func TestPropertiesAppendErrors(t *testing.T) {
	for name, p := range map[string]Properties{
		"long content type": {ContentType: strings.Repeat("x", 256)},
		"long cluster id":   {ClusterID: strings.Repeat("x", 256)},
		"bad header":        {Headers: Table{"k": struct{}{}}},
	} {
		out, err := p.Append([]byte("keep"))
		if err == nil || string(out) != "keep" {
			t.Errorf("%s: %q, %v", name, out, err)
		}
	}
}
