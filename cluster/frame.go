package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The inter-node wire format. Every frame is a 4-byte big-endian length (of what follows), one
// type byte and the payload. The length is checked against the reader's limit before anything is
// allocated.
//
//	hello    (dialer -> acceptor): version byte, cluster name (uvarint length + bytes),
//	         from node id (8 bytes), to node id (8 bytes)
//	helloOK  (acceptor -> dialer): the acceptor's node id (8 bytes)
//	helloErr (acceptor -> dialer): the reason (the rest of the payload), then the acceptor closes
//	batch    (both ways): uvarint count, then per message uvarint group id, uvarint length and the
//	         raftpb.Message protobuf encoding
const (
	frameHello    byte = 1
	frameHelloOK  byte = 2
	frameHelloErr byte = 3
	frameBatch    byte = 4
)

// wireVersion is the hello's version byte.
const wireVersion = 1

// DefaultMaxFrame bounds one frame (64 MiB); a snapshot larger than that cannot be sent (see
// TransportOptions.MaxFrame).
const DefaultMaxFrame = 64 << 20

// ErrMalformed is wrapped by every error for bytes that are not a valid frame.
var ErrMalformed = errors.New("cluster: malformed frame")

// Envelope is one Raft message of one group.
type Envelope struct {
	Group uint64
	Msg   *pb.Message
}

// readFrame reads one frame into buf (grown as needed, up to max bytes) and returns its type and
// payload (a slice of the returned buffer).
func readFrame(r io.Reader, buf []byte, max int) (typ byte, payload, newBuf []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, buf, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if uint64(n) > uint64(max) {
		return 0, nil, buf, fmt.Errorf("%w: frame of %d bytes over the limit of %d", ErrMalformed, n, max)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	return buf[0], buf[1:], buf, nil
}

// appendFrame appends a frame of typ with payload to dst.
func appendFrame(dst []byte, typ byte, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+1))
	dst = append(dst, typ)
	return append(dst, payload...)
}

// startFrame appends a frame header with a placeholder length; finishFrame sets it.
func startFrame(dst []byte, typ byte) ([]byte, int) {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0, typ)
	return dst, at
}

func finishFrame(dst []byte, at int) {
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
}

type hello struct {
	version  byte
	cluster  string
	from, to uint64
}

func appendHello(dst []byte, h hello) []byte {
	p := []byte{h.version}
	p = binary.AppendUvarint(p, uint64(len(h.cluster)))
	p = append(p, h.cluster...)
	p = binary.BigEndian.AppendUint64(p, h.from)
	p = binary.BigEndian.AppendUint64(p, h.to)
	return appendFrame(dst, frameHello, p)
}

func decodeHello(p []byte) (hello, error) {
	var h hello
	if len(p) < 1 {
		return h, fmt.Errorf("%w: short hello", ErrMalformed)
	}
	h.version = p[0]
	p = p[1:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return h, fmt.Errorf("%w: hello cluster name", ErrMalformed)
	}
	p = p[k:]
	h.cluster = string(p[:n])
	p = p[n:]
	if len(p) != 16 {
		return h, fmt.Errorf("%w: hello node ids", ErrMalformed)
	}
	h.from = binary.BigEndian.Uint64(p)
	h.to = binary.BigEndian.Uint64(p[8:])
	return h, nil
}

// appendBatch appends one batch frame holding envs to dst.
func appendBatch(dst []byte, envs []Envelope) ([]byte, error) {
	dst, at := startFrame(dst, frameBatch)
	dst = binary.AppendUvarint(dst, uint64(len(envs)))
	mo := proto.MarshalOptions{}
	for _, e := range envs {
		dst = binary.AppendUvarint(dst, e.Group)
		size := mo.Size(e.Msg)
		dst = binary.AppendUvarint(dst, uint64(size))
		var err error
		if dst, err = mo.MarshalAppend(dst, e.Msg); err != nil {
			return nil, fmt.Errorf("cluster: encode message of group %d: %w", e.Group, err)
		}
	}
	finishFrame(dst, at)
	return dst, nil
}

// decodeBatch decodes a batch frame's payload. Every message is a fresh value (the payload may be
// reused after it returns).
func decodeBatch(p []byte) ([]Envelope, error) {
	count, k := binary.Uvarint(p)
	if k <= 0 {
		return nil, fmt.Errorf("%w: batch count", ErrMalformed)
	}
	p = p[k:]
	// Every message takes at least two bytes (group id and length): bound the count by the bytes
	// present before allocating.
	if count > uint64(len(p)/2) {
		return nil, fmt.Errorf("%w: batch of %d messages in %d bytes", ErrMalformed, count, len(p))
	}
	out := make([]Envelope, 0, min(count, 1024)) // grown by what actually decodes
	for range count {
		group, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, fmt.Errorf("%w: message group id", ErrMalformed)
		}
		p = p[k:]
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, fmt.Errorf("%w: message length", ErrMalformed)
		}
		p = p[k:]
		m := &pb.Message{}
		if err := proto.Unmarshal(p[:n], m); err != nil {
			return nil, fmt.Errorf("%w: message of group %d: %v", ErrMalformed, group, err)
		}
		p = p[n:]
		out = append(out, Envelope{Group: group, Msg: m})
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the batch", ErrMalformed, len(p))
	}
	return out, nil
}

func putUint64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
func readUint64(b []byte) uint64   { return binary.BigEndian.Uint64(b) }
