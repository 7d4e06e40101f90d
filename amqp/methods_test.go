package amqp

import (
	"bytes"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/warrenmq/warren/amqp/internal/codegen"
)

// TestGeneratedFresh fails if methods_gen.go differs from what the generator
// produces from the committed spec: run `go generate ./amqp`.
func TestGeneratedFresh(t *testing.T) {
	spec, err := os.ReadFile("spec/amqp-rabbitmq-0.9.1.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := codegen.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("methods_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("methods_gen.go is stale: run `go generate ./amqp`")
	}
	if !bytes.HasPrefix(got, []byte(codegen.Header+"\n")) {
		t.Fatalf("methods_gen.go does not start with %q", codegen.Header)
	}
}

func TestGenerateRejectsBadSpec(t *testing.T) {
	for name, in := range map[string]string{
		"not json":       `{`,
		"no classes":     `{"classes": []}`,
		"unknown domain": `{"classes":[{"name":"c","id":1,"methods":[{"name":"m","id":1,"arguments":[{"name":"a","domain":"nope"}]}]}]}`,
		"unknown type":   `{"classes":[{"name":"c","id":1,"methods":[{"name":"m","id":1,"arguments":[{"name":"a","type":"float"}]}]}]}`,
		"duplicate":      `{"classes":[{"name":"c","id":1,"methods":[{"name":"m","id":1,"arguments":[{"name":"a","type":"bit"},{"name":"a","type":"bit"}]}]}]}`,
	} {
		if _, err := codegen.Generate([]byte(in)); err == nil {
			t.Errorf("%s: Generate succeeded", name)
		}
	}
}

// TestEveryMethodRoundTrip walks the spec, so a method added to the spec but
// missing from the generated dispatch fails here.
func TestEveryMethodRoundTrip(t *testing.T) {
	spec := loadSpec(t)
	count := 0
	for _, c := range spec.Classes {
		for _, sm := range c.Methods {
			count++
			full := c.Name + "." + sm.Name
			m := newMethod(uint16(c.ID), uint16(sm.ID))
			if m == nil {
				t.Errorf("%s: no generated method", full)
				continue
			}
			if m.Name() != full || m.HasContent() != sm.Content || m.Synchronous() != sm.Synchronous ||
				m.ClassID() != uint16(c.ID) || m.MethodID() != uint16(sm.ID) {
				t.Errorf("%s: metadata %s content=%t sync=%t ids=%d/%d", full, m.Name(), m.HasContent(), m.Synchronous(), m.ClassID(), m.MethodID())
			}
			if got, want := reflect.TypeOf(m).Elem().Name(), codegen.StructName(c.Name, sm.Name); got != want {
				t.Errorf("%s: struct %s, want %s", full, got, want)
			}
			if n := reflect.TypeOf(m).Elem().NumField(); n != len(sm.Arguments) {
				t.Errorf("%s: %d fields, spec has %d arguments", full, n, len(sm.Arguments))
			}
			fillNonZero(t, m, count)
			frame := mustMethodFrame(t, 7, m)
			fr := NewFrameReader(bytes.NewReader(frame))
			fr.SetFrameMax(0)
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: ReadFrame: %v", full, err)
			}
			if f.Type != FrameMethod || f.Channel != 7 {
				t.Fatalf("%s: frame type %d channel %d", full, f.Type, f.Channel)
			}
			got, err := DecodeMethod(f.Payload)
			if err != nil {
				t.Fatalf("%s: DecodeMethod: %v", full, err)
			}
			if !methodsEqual(m, got) {
				t.Errorf("%s: round trip\n got %+v\nwant %+v", full, got, m)
			}
			// Every strict prefix of the arguments is malformed.
			for n := 4; n < len(f.Payload); n++ {
				_, err := DecodeMethod(f.Payload[:n])
				e := asError(t, err, FrameError)
				if e.ClassID != uint16(c.ID) || e.MethodID != uint16(sm.ID) {
					t.Fatalf("%s: prefix %d: error ids %d/%d", full, n, e.ClassID, e.MethodID)
				}
			}
			testBitsIndependent(t, m)
		}
	}
	if count != 66 {
		t.Errorf("spec has %d methods, expected RabbitMQ's 66", count)
	}
	// Nothing outside the spec decodes.
	known := map[[2]int]bool{}
	for _, c := range spec.Classes {
		for _, sm := range c.Methods {
			known[[2]int{c.ID, sm.ID}] = true
		}
	}
	for class := 0; class < 256; class++ {
		for method := 0; method < 256; method++ {
			if got := newMethod(uint16(class), uint16(method)) != nil; got != known[[2]int{class, method}] {
				t.Errorf("newMethod(%d, %d) != nil is %t", class, method, got)
			}
		}
	}
}

// testBitsIndependent sets each bool field alone and checks it comes back
// alone, so bit positions within a packed octet are distinct.
func testBitsIndependent(t *testing.T, proto Method) {
	t.Helper()
	typ := reflect.TypeOf(proto).Elem()
	for i := 0; i < typ.NumField(); i++ {
		if typ.Field(i).Type.Kind() != reflect.Bool {
			continue
		}
		m := reflect.New(typ)
		m.Elem().Field(i).SetBool(true)
		got, err := DecodeMethod(mustPayload(t, m.Interface().(Method)))
		if err != nil {
			t.Fatal(err)
		}
		gv := reflect.ValueOf(got).Elem()
		for j := 0; j < typ.NumField(); j++ {
			if typ.Field(j).Type.Kind() == reflect.Bool && gv.Field(j).Bool() != (i == j) {
				t.Errorf("%s: setting %s alone decodes %s=%t", proto.Name(), typ.Field(i).Name, typ.Field(j).Name, gv.Field(j).Bool())
			}
		}
	}
}

func TestMethodGoldenBytes(t *testing.T) {
	for _, tc := range []struct {
		m   Method
		hex string
	}{
		// class 60 method 40, ticket 0, "ex", "rk", mandatory|immediate.
		{&BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true, Immediate: true}, "003c0028" + "0000" + "02" + "6578" + "02" + "726b" + "03"},
		// queue.declare: durable (bit 1) and auto-delete (bit 3) pack into 0x0a; empty table.
		{&QueueDeclare{Queue: "q", Durable: true, AutoDelete: true}, "0032000a" + "0000" + "0171" + "0a" + "00000000"},
		// basic.nack: delivery tag, multiple (bit 0) | requeue (bit 1).
		{&BasicNack{DeliveryTag: 5, Multiple: true, Requeue: true}, "003c0078" + "0000000000000005" + "03"},
		{&ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60}, "000a001f" + "07ff" + "00020000" + "003c"},
		{&ConnectionClose{ReplyCode: NotFound, ReplyText: "x", FailingClassID: 40, FailingMethodID: 10}, "000a0032" + "0194" + "0178" + "0028" + "000a"},
		{&TxSelect{}, "005a000a"},
	} {
		got := hex.EncodeToString(mustPayload(t, tc.m))
		if got != tc.hex {
			t.Errorf("%s: encoded %s, want %s", tc.m.Name(), got, tc.hex)
		}
		raw, _ := hex.DecodeString(tc.hex)
		m, err := DecodeMethod(raw)
		if err != nil || !methodsEqual(m, tc.m) {
			t.Errorf("%s: decoded %+v, %v", tc.m.Name(), m, err)
		}
	}
}

func TestDecodeMethodMalformed(t *testing.T) {
	long := func(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	declare := func(table []byte) []byte { return cat([]byte{0, 50, 0, 10, 0, 0, 0, 0x0c}, table) }
	for _, tc := range []struct {
		name          string
		payload       []byte
		code          uint16
		class, method uint16
		text          string // "" = any
	}{
		// Texts are those RabbitMQ 3.10.8 sends (integration/wire_conformance_test.go).
		{"empty", nil, FrameError, 0, 0, "FRAME_ERROR - type 1, all octets = <<>>: unknown_frame"},
		{"two bytes", []byte{0, 50}, FrameError, 0, 0, "FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame"},
		{"unknown class", []byte{0, 99, 0, 10}, NotImplemented, 99, 10, ""},
		{"unknown method", []byte{0, 60, 0, 255}, NotImplemented, 60, 255, ""},
		{"truncated arguments", []byte{0, 50, 0, 10, 0, 0}, FrameError, 50, 10, "FRAME_ERROR - cannot decode <<0,0>>"},
		{"shortstr past end", []byte{0, 50, 0, 10, 0, 0, 200, 'a', 'b', 'c'}, FrameError, 50, 10, "FRAME_ERROR - cannot decode <<0,0,200,97,98,99>>"},
		{"table length past end", declare(cat(long(1000), []byte{1, 'k', 't', 1})), FrameError, 50, 10, "FRAME_ERROR - cannot decode <<0,0,0,12,0,0,3,232,1,107,116,1>>"},
		{"table longstr past end", declare(cat(long(9), []byte{1, 'k', 'S'}, long(100), []byte{'x'})), FrameError, 50, 10, "FRAME_ERROR - cannot decode <<0,0,0,12,0,0,0,9,1,107,83,0,0,0,100,120>>"},
		{"table bad type", declare(cat(long(5), []byte{1, 'k', 'Z', 0, 0})), FrameError, 50, 10, ""},
		{"table key past end", declare(cat(long(3), []byte{50, 'a', 'b'})), FrameError, 50, 10, ""},
		{"nested table past end", declare(cat(long(7), []byte{1, 'k', 'F'}, long(500))), FrameError, 50, 10, ""},
		{"trailing bytes", cat([]byte{0, 60, 0, 80}, make([]byte, 8), []byte{1}, []byte("junk")), FrameError, 60, 80, "FRAME_ERROR - cannot decode <<0,0,0,0,0,0,0,0,1,106,117,110,107>>"},
		{"start-ok longstr 4GiB", cat([]byte{0, 10, 0, 11}, long(0), []byte{5, 'P', 'L', 'A', 'I', 'N'}, long(0xFFFFFFFF), []byte("abc")), FrameError, 10, 11, ""},
		{"tune short", []byte{0, 10, 0, 30, 0, 1, 0, 0}, FrameError, 10, 30, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMethod(tc.payload)
			if m != nil {
				t.Errorf("method %+v returned with error", m)
			}
			e := asError(t, err, tc.code)
			if e.ClassID != tc.class || e.MethodID != tc.method {
				t.Errorf("ids %d/%d, want %d/%d", e.ClassID, e.MethodID, tc.class, tc.method)
			}
			if tc.text != "" && e.Text != tc.text {
				t.Errorf("text %q\n want %q", e.Text, tc.text)
			}
			if !e.Hard() {
				t.Errorf("%v should be a hard error", e)
			}
		})
	}
}

func TestDecodeArgsIgnoresTrailingBytes(t *testing.T) {
	p := append(mustPayload(t, &BasicAck{DeliveryTag: 9, Multiple: true}), 1, 2, 3)
	var a BasicAck
	if err := a.DecodeArgs(p[4:]); err != nil {
		t.Fatal(err)
	}
	if a.DeliveryTag != 9 || !a.Multiple {
		t.Fatalf("got %+v", a)
	}
	err := (&BasicAck{}).DecodeArgs(p[4:8])
	if e := asError(t, err, FrameError); e.ClassID != ClassBasic || e.MethodID != 80 {
		t.Fatalf("ids %d/%d", e.ClassID, e.MethodID)
	}
	// DecodeMethod, like RabbitMQ, does not.
	_, err = DecodeMethod(p)
	asError(t, err, FrameError)
}

func TestErlBinary(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "<<>>",
		"xyz":                     `<<"xyz">>`,
		"boo":                     `<<"boo">>`,
		"a\"b\\c\n":               `<<"a\"b\\c\n">>`,
		"\x00\x32":                "<<0,50>>",
		"ab\x00":                  "<<97,98,0>>",
		string(make([]byte, 130)): "<<" + strings.Repeat("0,", 128) + "...>>",
	} {
		if got := erlBinary([]byte(in)); got != want {
			t.Errorf("erlBinary(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAppendMethodErrors(t *testing.T) {
	long := string(make([]byte, 256))
	dst := []byte("keep")
	for _, m := range []Method{
		&BasicPublish{RoutingKey: long},
		&QueueDeclare{Arguments: Table{"bad": struct{}{}}},
		nil,
		(*BasicAck)(nil),
	} {
		out, err := AppendMethod(dst, m)
		if err == nil {
			t.Errorf("%T: no error", m)
		}
		if string(out) != "keep" {
			t.Errorf("%T: dst changed to %q", m, out)
		}
		out, err = AppendMethodFrame(dst, 1, m)
		if err == nil || string(out) != "keep" {
			t.Errorf("%T: AppendMethodFrame = %q, %v", m, out, err)
		}
	}
}

// TestContractNames pins the Go names the server is written against
// (docs: /work/contract/amqp-api.md); it fails to compile if one changes.
func TestContractNames(t *testing.T) {
	ms := []Method{
		&ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: Table{}, Mechanisms: "PLAIN", Locales: "en_US"},
		&ConnectionStartOk{ClientProperties: Table{}, Mechanism: "PLAIN", Response: "", Locale: "en_US"},
		&ConnectionTuneOk{ChannelMax: 1, FrameMax: 2, Heartbeat: 3},
		&ConnectionOpen{VirtualHost: "/", Capabilities: "", Insist: false},
		&ConnectionClose{ReplyCode: 1, ReplyText: "", FailingClassID: 1, FailingMethodID: 2},
		&ConnectionBlocked{Reason: "low on memory"},
		&ConnectionUnblocked{},
		&ConnectionUpdateSecret{NewSecret: "s", Reason: "r"},
		&ConnectionUpdateSecretOk{},
		&ChannelOpen{OutOfBand: ""},
		&ChannelOpenOk{ChannelID: ""},
		&ChannelFlow{Active: true},
		&ChannelClose{ReplyCode: 1, ReplyText: "", FailingClassID: 1, FailingMethodID: 2},
		&AccessRequest{Realm: "/data", Exclusive: false, Passive: true, Active: true, Write: true, Read: true},
		&ExchangeDeclare{Ticket: 0, Exchange: "e", Type: "direct", Passive: false, Durable: true, AutoDelete: false, Internal: false, NoWait: false, Arguments: nil},
		&ExchangeDeclareOk{},
		&ExchangeDelete{Exchange: "e", IfUnused: true, NoWait: true},
		&ExchangeBind{Destination: "d", Source: "s", RoutingKey: "k", NoWait: false, Arguments: nil},
		&ExchangeUnbind{Destination: "d", Source: "s", RoutingKey: "k"},
		&QueueDeclare{Queue: "q", Passive: false, Durable: true, Exclusive: false, AutoDelete: false, NoWait: false, Arguments: nil},
		&QueueDeclareOk{Queue: "q", MessageCount: 1, ConsumerCount: 2},
		&QueueBind{Queue: "q", Exchange: "e", RoutingKey: "k", NoWait: false, Arguments: nil},
		&QueuePurgeOk{MessageCount: 1},
		&QueueDelete{Queue: "q", IfUnused: true, IfEmpty: true, NoWait: true},
		&QueueUnbind{Queue: "q", Exchange: "e", RoutingKey: "k", Arguments: nil},
		&BasicQos{PrefetchSize: 0, PrefetchCount: 10, Global: false},
		&BasicConsume{Queue: "q", ConsumerTag: "c", NoLocal: false, NoAck: true, Exclusive: false, NoWait: false, Arguments: nil},
		&BasicCancel{ConsumerTag: "c", NoWait: true},
		&BasicPublish{Exchange: "e", RoutingKey: "k", Mandatory: true, Immediate: false},
		&BasicReturn{ReplyCode: NoRoute, ReplyText: "NO_ROUTE", Exchange: "e", RoutingKey: "k"},
		&BasicDeliver{ConsumerTag: "c", DeliveryTag: 1, Redelivered: true, Exchange: "e", RoutingKey: "k"},
		&BasicGet{Queue: "q", NoAck: true},
		&BasicGetOk{DeliveryTag: 1, Redelivered: false, Exchange: "e", RoutingKey: "k", MessageCount: 3},
		&BasicGetEmpty{ClusterID: ""},
		&BasicAck{DeliveryTag: 1, Multiple: true},
		&BasicReject{DeliveryTag: 1, Requeue: true},
		&BasicRecoverAsync{Requeue: true},
		&BasicRecover{Requeue: true},
		&BasicNack{DeliveryTag: 1, Multiple: true, Requeue: true},
		&ConfirmSelect{NoWait: true},
		&ConfirmSelectOk{},
		&TxSelect{}, &TxSelectOk{}, &TxCommit{}, &TxCommitOk{}, &TxRollback{}, &TxRollbackOk{},
	}
	for _, m := range ms {
		if _, err := DecodeMethod(mustPayload(t, m)); err != nil {
			t.Errorf("%s: %v", m.Name(), err)
		}
	}
	for _, id := range []uint16{ClassConnection, ClassChannel, ClassAccess, ClassExchange, ClassQueue, ClassBasic, ClassConfirm, ClassTx} {
		if id == 0 {
			t.Error("zero class id")
		}
	}
}
