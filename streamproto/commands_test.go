package streamproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// samples has one of every command this package decodes.
func samples() []Command {
	return []Command{
		&PeerProperties{CorrelationID: 1, Properties: []KV{{"product", "RabbitMQ Stream"}, {"version", "1.8.3"}}},
		&PeerPropertiesResponse{CorrelationID: 1, Code: CodeOK, Properties: []KV{{"cluster_name", "warren@host"}}},
		&SaslHandshake{CorrelationID: 2},
		&ExchangeCommandVersions{CorrelationID: 9, Versions: []CommandVersion{{KeyPublish, 1, 2}}},
		&ExchangeCommandVersions{Response: true, CorrelationID: 9, Code: CodeOK, Versions: []CommandVersion{{KeyDeliver, 1, 2}}},
		&StreamStats{CorrelationID: 10, Stream: "s"},
		&MetadataUpdate{Code: CodeStreamNotAvailable, Stream: "s"},
		&StreamStatsResponse{CorrelationID: 10, Code: CodeOK, Stats: []Stat{{"first_chunk_id", 0}, {"committed_chunk_id", -1}}},
		&SaslHandshakeResponse{CorrelationID: 2, Code: CodeOK, Mechanisms: []string{"PLAIN", "AMQPLAIN"}},
		&SaslAuthenticate{CorrelationID: 3, Mechanism: "PLAIN", Data: []byte("\x00guest\x00guest")},
		&SaslAuthenticateResponse{CorrelationID: 3, Code: CodeOK},
		&SaslAuthenticateResponse{CorrelationID: 3, Code: CodeSaslChallenge, Data: []byte("challenge")},
		&Tune{FrameMax: 1048576, Heartbeat: 60},
		&Tune{FrameMax: 1048574, Heartbeat: 60, Response: true},
		&Open{CorrelationID: 4, VirtualHost: "/"},
		&OpenResponse{CorrelationID: 4, Code: CodeOK, Properties: []KV{{"advertised_host", "localhost"}, {"advertised_port", "5552"}}},
		&OpenResponse{CorrelationID: 4, Code: CodeVirtualHostAccessFailure},
		&Create{CorrelationID: 5, Stream: "s", Arguments: []KV{{"max-length-bytes", "1000000"}, {"queue-leader-locator", "least-leaders"}}},
		&Response{For: KeyCreate, CorrelationID: 5, Code: CodeStreamAlreadyExists},
		&Delete{CorrelationID: 6, Stream: "s"},
		&Response{For: KeyDelete, CorrelationID: 6, Code: CodeStreamDoesNotExist},
		&DeclarePublisher{CorrelationID: 7, PublisherID: 0, Reference: "", Stream: "s"},
		&DeclarePublisher{CorrelationID: 8, PublisherID: 3, Reference: "producer-1", Stream: "s"},
		&Response{For: KeyDeclarePublisher, CorrelationID: 8, Code: CodeOK},
		&Publish{V: 1, PublisherID: 3, Messages: []PublishedMessage{{PublishingID: 1, Message: []byte("a")}, {PublishingID: 2, Message: []byte{}}}},
		&Publish{V: 2, PublisherID: 3, Messages: []PublishedMessage{{PublishingID: 9, FilterValue: "eu", Message: []byte("x")}}},
		&PublishConfirm{PublisherID: 3, PublishingIDs: []uint64{1, 2}},
		&PublishError{PublisherID: 3, Errors: []PublishingError{{PublishingID: 5, Code: CodePublisherDoesNotExist}}},
		&Subscribe{CorrelationID: 9, SubscriptionID: 1, Stream: "s", Offset: OffsetSpec{Type: OffsetFirst}, Credit: 10},
		&Subscribe{CorrelationID: 10, SubscriptionID: 2, Stream: "s", Offset: OffsetSpec{Type: OffsetOffset, Value: 42}, Credit: 1,
			Properties: []KV{{"name", "c1"}, {"single-active-consumer", "true"}}},
		&Subscribe{CorrelationID: 11, SubscriptionID: 3, Stream: "s", Offset: OffsetSpec{Type: OffsetTimestamp, Value: 1700000000000}, Credit: 1},
		&Response{For: KeySubscribe, CorrelationID: 9, Code: CodeOK},
		&Deliver{V: 1, SubscriptionID: 1, Chunk: ChunkHeader{MagicVersion: 0x50, NumEntries: 1, NumRecords: 1, Timestamp: 1700000000000, Epoch: 1,
			ChunkFirstOffset: 100, ChunkCRC: 0xdeadbeef, DataLength: 3}, Data: []byte("abc")},
		&Deliver{V: 2, SubscriptionID: 1, CommittedChunkID: 99, Chunk: ChunkHeader{MagicVersion: 0x50, DataLength: 0}},
		&Credit{SubscriptionID: 1, Credit: 5},
		&CreditResponse{Code: CodeSubscriptionIDDoesNotExist, SubscriptionID: 7},
		&StoreOffset{Reference: "c1", Stream: "s", Offset: 1234},
		&QueryOffset{CorrelationID: 12, Reference: "c1", Stream: "s"},
		&QueryOffsetResponse{CorrelationID: 12, Code: CodeNoOffset},
		&MetadataQuery{CorrelationID: 13, Streams: []string{"s", "t"}},
		&Metadata{CorrelationID: 13, Brokers: []Broker{{0, "localhost", 5552}, {1, "h2", 5552}},
			Streams: []StreamMetadata{{Stream: "s", Code: CodeOK, Leader: 0, Replicas: []uint16{1}}, {Stream: "t", Code: CodeStreamDoesNotExist, Leader: 0xFFFF}}},
		&Close{CorrelationID: 14, Code: CodeOK, Reason: "OK"},
		&Response{For: KeyClose, CorrelationID: 14, Code: CodeOK},
		&Heartbeat{},
		&DeletePublisher{CorrelationID: 15, PublisherID: 3},
		&Response{For: KeyDeletePublisher, CorrelationID: 15, Code: CodePublisherDoesNotExist},
		&Unsubscribe{CorrelationID: 16, SubscriptionID: 1},
		&Response{For: KeyUnsubscribe, CorrelationID: 16, Code: CodeOK},
		&QueryPublisherSequence{CorrelationID: 17, Reference: "producer-1", Stream: "s"},
		&QueryPublisherSequenceResponse{CorrelationID: 17, Code: CodeOK, Sequence: 41},
	}
}

func TestRoundTrip(t *testing.T) {
	var all []byte
	for _, c := range samples() {
		b, err := Append([]byte("pre"), c)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		b = b[3:]
		all = append(all, b...)
		f, n, err := ReadFrame(b, 0)
		if err != nil || n != len(b) {
			t.Fatalf("%T: ReadFrame %d %v", c, n, err)
		}
		if f.Key != c.Key() || f.Version != c.Version() {
			t.Fatalf("%T: key %#x version %d", c, f.Key, f.Version)
		}
		got, err := Decode(f)
		if err != nil {
			t.Fatalf("%T: %v (%x)", c, err, b)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", c, got, c)
		}
		for i := 0; i < len(b); i++ {
			if _, n, err := ReadFrame(b[:i], 0); err != ErrNeedMore || n != 0 {
				t.Fatalf("%T: prefix %d: %d %v", c, i, n, err)
			}
		}
	}
	// Frames back to back.
	count := 0
	for len(all) > 0 {
		_, n, err := ReadFrame(all, 0)
		if err != nil {
			t.Fatal(err)
		}
		all = all[n:]
		count++
	}
	if count != len(samples()) {
		t.Fatalf("%d frames", count)
	}
}

// TestGolden checks exact bytes, laid out by hand from PROTOCOL.adoc and
// the Go client's writer (size, key, version, then fields).
func TestGolden(t *testing.T) {
	cases := []struct {
		c   Command
		hex string
	}{
		{&PeerProperties{CorrelationID: 1, Properties: []KV{{"a", "b"}}},
			"00000012" + "0011" + "0001" + "00000001" + "00000001" + "000161" + "000162"},
		{&Tune{FrameMax: 1048576, Heartbeat: 60, Response: true},
			"0000000c" + "8014" + "0001" + "00100000" + "0000003c"},
		{&Subscribe{CorrelationID: 2, SubscriptionID: 1, Stream: "s", Offset: OffsetSpec{Type: OffsetOffset, Value: 7}, Credit: 10},
			"00000018" + "0007" + "0001" + "00000002" + "01" + "000173" + "0004" + "0000000000000007" + "000a"},
		{&Publish{PublisherID: 1, Messages: []PublishedMessage{{PublishingID: 5, Message: []byte("hi")}}},
			"00000017" + "0002" + "0001" + "01" + "00000001" + "0000000000000005" + "00000002" + "6869"},
		{&Response{For: KeyDeclarePublisher, CorrelationID: 3, Code: CodeOK},
			"0000000a" + "8001" + "0001" + "00000003" + "0001"},
		{&Heartbeat{}, "00000004" + "0017" + "0001"},
	}
	for _, c := range cases {
		b, err := Append(nil, c.c)
		if err != nil || hex.EncodeToString(b) != c.hex {
			t.Errorf("%T: %x (%v), want %s", c.c, b, err, c.hex)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	frame := func(key, version uint16, payload string) Frame {
		p, err := hex.DecodeString(payload)
		if err != nil {
			t.Fatal(err)
		}
		return Frame{Key: key, Version: version, Payload: p}
	}
	cases := []struct {
		f    Frame
		want string
	}{
		{frame(99, 1, ""), "unknown command key 0x0063"},
		{frame(KeyCredit, 2, "010005"), "version 2 is not supported"},
		{frame(KeyPublish, 3, "01"), "version 3 is not supported"},
		{frame(KeyCredit, 1, "0100"), "credit: need 2 bytes, 1 left"},
		{frame(KeyCredit, 1, "01000500"), "1 bytes left after the last field"},
		{frame(KeyOpen, 1, "00000001ffff"), ""}, // null string: OK
		{frame(KeyOpen, 1, "00000001fffe"), "negative string length -2"},
		{frame(KeyOpen, 1, "000000010005ab"), "virtual host: need 5 bytes"},
		// A count that cannot fit is refused before anything is allocated.
		{frame(KeyPublishConfirm, 1, "017fffffff"), "2147483647 elements cannot fit in 0 bytes"},
		{frame(KeyPublishConfirm, 1, "01ffffffff"), "negative count -1"},
		{frame(KeySubscribe, 1, "00000001010001730009000a"), "unknown offset type 9"},
		{frame(KeyDeliver, 1, "01"+"50"), "chunk header: need 48 bytes, 1 left"},
		{frame(KeyDeliver, 1, "01"+"5000"+"0000"+"00000000"+"0000000000000000"+"0000000000000000"+"0000000000000000"+"00000000"+"00000005"+"00000000"+"00000000"+"abcd"),
			"chunk data length 5 but 2 bytes follow"},
		{frame(KeySaslAuthenticate, 1, "000000010005504c41494e80000000"), "sasl data: negative length"},
		{frame(KeyMetadata|ResponseFlag, 1, "0000000100000001"), "brokers: 1 elements cannot fit in 0 bytes"},
		{frame(0x8063, 1, ""), "unknown command key 0x8063"},
	}
	for _, c := range cases {
		_, err := Decode(c.f)
		if c.want == "" {
			if err != nil {
				t.Errorf("%#x %x: %v", c.f.Key, c.f.Payload, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnknownFrame || !bytes.Contains([]byte(e.Detail), []byte(c.want)) {
			t.Errorf("%#x %x: %v, want %q", c.f.Key, c.f.Payload, err, c.want)
		}
	}
}

func TestReadFrameLimits(t *testing.T) {
	var e *Error
	if _, _, err := ReadFrame([]byte{0, 0x10, 0, 0}, 0); !errors.As(err, &e) || e.Code != CodeFrameTooLarge {
		t.Fatalf("frame of 1 MiB + 4 with the default frame_max: %v", err)
	}
	if _, _, err := ReadFrame([]byte{0, 0, 0, 100}, 64); !errors.As(err, &e) || e.Code != CodeFrameTooLarge {
		t.Fatalf("frame over a tuned frame_max: %v", err)
	}
	if _, _, err := ReadFrame([]byte{0xff, 0xff, 0xff, 0xff}, 0xffffffff); !errors.As(err, &e) || e.Code != CodeFrameTooLarge {
		t.Fatalf("frame size overflowing frame_max: %v", err)
	}
	if _, _, err := ReadFrame([]byte{0, 0, 0, 3, 0, 0, 0}, 0); !errors.As(err, &e) || e.Code != CodeUnknownFrame {
		t.Fatalf("frame too short for key and version: %v", err)
	}
	// Exactly frame_max is allowed.
	if _, n, err := ReadFrame([]byte{0, 0, 0, 4, 0, 0x17, 0, 1}, 8); err != nil || n != 8 {
		t.Fatalf("frame at frame_max: %d %v", n, err)
	}
}

func TestAppendRefusesLongString(t *testing.T) {
	long := string(make([]byte, 0x8000))
	b, err := Append([]byte("x"), &Open{VirtualHost: long})
	if err == nil || string(b) != "x" {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
}
