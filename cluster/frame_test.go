package cluster

import (
	"bytes"
	"errors"
	"io"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestBatchRoundTrip(t *testing.T) {
	envs := []Envelope{
		{Group: 1, Msg: msg(pb.MessageType_MsgApp, 1, 2, 5)},
		{Group: 1 << 40, Msg: &pb.Message{Type: pb.MessageType_MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)),
			Snapshot: &pb.Snapshot{Data: bytes.Repeat([]byte("s"), 1000), Metadata: &pb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(2))}}}},
		{Group: 3, Msg: &pb.Message{Type: pb.MessageType_MsgApp.Enum(), Entries: []*pb.Entry{{Index: new(uint64(6)), Data: []byte("x")}}}},
	}
	b, err := appendBatch(nil, envs)
	if err != nil {
		t.Fatal(err)
	}
	typ, p, _, err := readFrame(bytes.NewReader(b), nil, 1<<20)
	if err != nil || typ != frameBatch {
		t.Fatalf("type %d, %v", typ, err)
	}
	got, err := decodeBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(envs) {
		t.Fatalf("%d messages, want %d", len(got), len(envs))
	}
	for i := range envs {
		if got[i].Group != envs[i].Group || !proto.Equal(got[i].Msg, envs[i].Msg) {
			t.Fatalf("message %d: %v, want %v", i, got[i], envs[i])
		}
	}
	if _, _, _, err := readFrame(bytes.NewReader(b), nil, len(b)-5); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a frame over the limit: %v", err)
	}
	h := hello{version: wireVersion, cluster: "c", from: 1, to: 1 << 63}
	typ, p, _, err = readFrame(bytes.NewReader(appendHello(nil, h)), nil, 4096)
	if err != nil || typ != frameHello {
		t.Fatal(typ, err)
	}
	if got, err := decodeHello(p); err != nil || got != h {
		t.Fatalf("hello %+v, %v", got, err)
	}
}

// FuzzFrameDecoder feeds the decoder arbitrary bytes: frames are read until an error, each decoded
// as its type says; nothing panics, every error is ErrMalformed or a short read, and a batch that
// decodes re-encodes to the same messages.
func FuzzFrameDecoder(f *testing.F) {
	valid, _ := appendBatch(nil, []Envelope{{Group: 7, Msg: msg(pb.MessageType_MsgApp, 1, 2, 3)},
		{Group: 8, Msg: &pb.Message{Entries: []*pb.Entry{{Index: new(uint64(1)), Data: []byte("d")}}}}})
	f.Add(valid)
	f.Add(appendHello(nil, hello{version: 1, cluster: "test", from: 1, to: 2}))
	f.Add(append(appendFrame(nil, frameHelloOK, make([]byte, 8)), valid...))
	f.Add([]byte{0, 0, 0, 3, frameBatch, 0xe8, 0x07})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var buf []byte
		for {
			typ, p, b, err := readFrame(r, buf, 1<<16)
			buf = b
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("readFrame: unexpected error %v", err)
				}
				return
			}
			switch typ {
			case frameHello:
				h, err := decodeHello(p)
				if err == nil {
					if _, p2, _, _ := readFrame(bytes.NewReader(appendHello(nil, h)), nil, 1<<16); !bytes.Equal(p2, p) {
						t.Fatalf("hello %+v re-encodes differently", h)
					}
				} else if !errors.Is(err, ErrMalformed) {
					t.Fatal(err)
				}
			case frameBatch:
				envs, err := decodeBatch(p)
				if err != nil {
					if !errors.Is(err, ErrMalformed) {
						t.Fatal(err)
					}
					continue
				}
				again, err := appendBatch(nil, envs)
				if err != nil {
					t.Fatal(err)
				}
				envs2, err := decodeBatch(again[5:])
				if err != nil || len(envs2) != len(envs) {
					t.Fatalf("re-encoded batch: %d messages, %v (had %d)", len(envs2), err, len(envs))
				}
				for i := range envs {
					if envs[i].Group != envs2[i].Group || !proto.Equal(envs[i].Msg, envs2[i].Msg) {
						t.Fatalf("message %d changed on re-encoding", i)
					}
				}
			}
		}
	})
}
