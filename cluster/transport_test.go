package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/wait"
	pb "go.etcd.io/raft/v3/raftpb"
)

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu          sync.Mutex
	got         []Envelope
	unreachable map[uint64]int
	snaps       []bool
}

func (r *recorder) Receive(_ uint64, envs []Envelope) {
	r.mu.Lock()
	r.got = append(r.got, envs...)
	r.mu.Unlock()
}

func (r *recorder) Unreachable(peer uint64, groups []uint64) {
	r.mu.Lock()
	if r.unreachable == nil {
		r.unreachable = map[uint64]int{}
	}
	r.unreachable[peer] += len(groups)
	r.mu.Unlock()
}

func (r *recorder) SnapshotStatus(_, _ uint64, ok bool) {
	r.mu.Lock()
	r.snaps = append(r.snaps, ok)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func listen(t *testing.T, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func newTestTransport(t *testing.T, o TransportOptions, h Handler) *Transport {
	t.Helper()
	o.Cluster, o.Logger = "test", quiet
	o.BackoffMin, o.BackoffMax = 5*time.Millisecond, 50*time.Millisecond
	tr, err := NewTransport(o, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	return tr
}

func msg(typ pb.MessageType, from, to, index uint64) *pb.Message {
	return &pb.Message{Type: typ.Enum(), From: new(from), To: new(to), Index: new(index), Term: new(uint64(1))}
}

// Two transports exchange batches both ways over their one connection.
func TestTransportSendReceive(t *testing.T) {
	ips := loopbackIPs(t)
	ln1, ln2 := listen(t, ips[0]), listen(t, ips[1])
	r1, r2 := &recorder{}, &recorder{}
	t1 := newTestTransport(t, TransportOptions{ID: 1, Listener: ln1, Peers: map[uint64]string{2: ln2.Addr().String()}}, r1)
	t2 := newTestTransport(t, TransportOptions{ID: 2, Listener: ln2, Peers: map[uint64]string{1: ln1.Addr().String()}}, r2)
	wait.For(t, 10*time.Second, "the connection", func() bool { return t1.Connected(2) && t2.Connected(1) })
	for i := range uint64(500) {
		if !t1.Send(2, i%7, msg(pb.MessageType_MsgApp, 1, 2, i)) || !t2.Send(1, i%7, msg(pb.MessageType_MsgAppResp, 2, 1, i)) {
			t.Fatalf("send %d dropped", i)
		}
	}
	wait.For(t, 10*time.Second, "500 messages each way", func() bool { return r1.count() == 500 && r2.count() == 500 })
	for _, r := range []*recorder{r1, r2} {
		for i, e := range r.got {
			if e.Msg.GetIndex() != uint64(i) || e.Group != uint64(i)%7 {
				t.Fatalf("message %d: group %d index %d (out of order or mislabelled)", i, e.Group, e.Msg.GetIndex())
			}
		}
	}
	if s := t1.Stats(); s.FramesSent == 0 || s.FramesSent > 500 || s.MessagesSent != 500 {
		t.Fatalf("stats %+v", s)
	}
	// Isolated: the connection drops, sends are refused; healed: it comes back.
	t2.SetIsolated(true)
	wait.For(t, 10*time.Second, "the connection to break", func() bool { return !t1.Connected(2) && !t2.Connected(1) })
	if t1.Send(2, 1, msg(pb.MessageType_MsgApp, 1, 2, 1)) || t2.Send(1, 1, msg(pb.MessageType_MsgApp, 2, 1, 1)) {
		t.Fatal("a send was queued to a peer that is not connected")
	}
	t2.SetIsolated(false)
	wait.For(t, 10*time.Second, "the connection to come back", func() bool { return t1.Connected(2) && t2.Connected(1) })
}

// The dialer's connections leave from its listener's address; it redials after a refusal and
// after a broken connection; a handshake with the wrong node is refused.
func TestTransportDialer(t *testing.T) {
	ips := loopbackIPs(t)
	ln1 := listen(t, ips[0])
	peer := listen(t, ips[1]) // plays node 2 by hand
	defer func() { _ = peer.Close() }()
	r := &recorder{}
	t1 := newTestTransport(t, TransportOptions{ID: 1, Listener: ln1, Peers: map[uint64]string{2: peer.Addr().String()}}, r)

	accept := func() (net.Conn, hello) {
		t.Helper()
		c, err := peer.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != ips[0] {
			t.Fatalf("connection from %s, want the node's own address %s", got, ips[0])
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		typ, p, _, err := readFrame(c, nil, 4096)
		if err != nil || typ != frameHello {
			t.Fatalf("hello: type %d, %v", typ, err)
		}
		h, err := decodeHello(p)
		if err != nil {
			t.Fatal(err)
		}
		return c, h
	}
	c, h := accept()
	if h != (hello{version: wireVersion, cluster: "test", from: 1, to: 2}) {
		t.Fatalf("hello %+v", h)
	}
	_, _ = c.Write(appendFrame(nil, frameHelloErr, []byte("go away")))
	_ = c.Close()
	c, _ = accept() // redialed after the refusal
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], 3)
	_, _ = c.Write(appendFrame(nil, frameHelloOK, id[:])) // the wrong node answers
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the dialer kept a connection to the wrong node")
	}
	_ = c.Close()
	c, _ = accept()
	binary.BigEndian.PutUint64(id[:], 2)
	_, _ = c.Write(appendFrame(nil, frameHelloOK, id[:]))
	wait.For(t, 10*time.Second, "the connection", func() bool { return t1.Connected(2) })
	if !t1.Send(2, 9, msg(pb.MessageType_MsgHeartbeat, 1, 2, 0)) {
		t.Fatal("send dropped")
	}
	typ, p, _, err := readFrame(c, nil, 1<<20)
	if err != nil || typ != frameBatch {
		t.Fatalf("batch: type %d, %v", typ, err)
	}
	envs, err := decodeBatch(p)
	if err != nil || len(envs) != 1 || envs[0].Group != 9 || envs[0].Msg.GetType() != pb.MessageType_MsgHeartbeat {
		t.Fatalf("batch %v, %v", envs, err)
	}
	_ = c.Close() // broken: it redials
	c, _ = accept()
	_ = c.Close()
}

// An accepted connection with a bad handshake or a malformed frame is closed, without a panic and
// without anything reaching the handler; a good one still works afterwards.
func TestTransportMalformedInput(t *testing.T) {
	ips := loopbackIPs(t)
	ln := listen(t, ips[1])
	r := &recorder{}
	// Node 2; node 1 (lower id) dials it; node 3 is dialed by it (its address is unused).
	tr := newTestTransport(t, TransportOptions{ID: 2, Listener: ln, MaxFrame: 1 << 16,
		Peers: map[uint64]string{1: "127.0.0.1:1", 3: "127.0.0.1:1"}}, r)

	dial := func(h hello) (net.Conn, byte, []byte) {
		t.Helper()
		c, err := net.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(appendHello(nil, h)); err != nil {
			t.Fatal(err)
		}
		typ, p, _, err := readFrame(c, nil, 4096)
		if err != nil {
			t.Fatalf("handshake reply: %v", err)
		}
		return c, typ, p
	}
	closed := func(c net.Conn, what string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the connection stayed open", what)
		}
		_ = c.Close()
	}
	for _, tc := range []struct {
		name string
		h    hello
	}{
		{"wrong cluster", hello{version: wireVersion, cluster: "other", from: 1, to: 2}},
		{"wrong node", hello{version: wireVersion, cluster: "test", from: 1, to: 5}},
		{"unknown node", hello{version: wireVersion, cluster: "test", from: 4, to: 2}},
		{"higher id dials", hello{version: wireVersion, cluster: "test", from: 3, to: 2}},
		{"wire version", hello{version: 9, cluster: "test", from: 1, to: 2}},
	} {
		c, typ, p := dial(tc.h)
		if typ != frameHelloErr {
			t.Fatalf("%s: reply type %d (%q), want a refusal", tc.name, typ, p)
		}
		closed(c, tc.name)
	}
	// Not a hello at all.
	c, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	closed(c, "an HTTP request")

	good := hello{version: wireVersion, cluster: "test", from: 1, to: 2}
	valid, err := appendBatch(nil, []Envelope{{Group: 1, Msg: msg(pb.MessageType_MsgApp, 1, 2, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	wrongTo, _ := appendBatch(nil, []Envelope{{Group: 1, Msg: msg(pb.MessageType_MsgApp, 1, 3, 1)}})
	wrongFrom, _ := appendBatch(nil, []Envelope{{Group: 1, Msg: msg(pb.MessageType_MsgApp, 3, 2, 1)}})
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"frame over the limit", []byte{0x7f, 0xff, 0xff, 0xff, frameBatch}},
		{"empty frame", []byte{0, 0, 0, 0}},
		{"unknown frame type", appendFrame(nil, 9, []byte{1, 2, 3})},
		{"hello again", appendHello(nil, good)},
		{"count past the bytes", appendFrame(nil, frameBatch, []byte{0xe8, 0x07, 1, 1})},
		{"bad varint", appendFrame(nil, frameBatch, bytes.Repeat([]byte{0xff}, 12))},
		{"length past the frame", appendFrame(nil, frameBatch, []byte{1, 1, 100, 1})},
		{"bad protobuf", appendFrame(nil, frameBatch, []byte{1, 1, 3, 0xff, 0xff, 0xff})},
		{"trailing bytes", appendFrame(nil, frameBatch, append(bytes.Clone(valid[5:]), 0))},
		{"message to another node", wrongTo},
		{"message from another node", wrongFrom},
		{"truncated frame", valid[:len(valid)-2]},
	} {
		c, typ, _ := dial(good)
		if typ != frameHelloOK {
			t.Fatalf("%s: handshake refused", tc.name)
		}
		if _, err := c.Write(tc.bytes); err != nil {
			t.Fatal(err)
		}
		if tc.name == "truncated frame" {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		closed(c, tc.name)
		if n := r.count(); n != 0 {
			t.Fatalf("%s: the handler received %d messages", tc.name, n)
		}
	}
	// A well-formed batch is received.
	c, typ, _ := dial(good)
	if typ != frameHelloOK {
		t.Fatal("handshake refused")
	}
	if _, err := c.Write(valid); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the valid message", func() bool { return r.count() == 1 })
	_ = c.Close()
}
