package fifo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Kind is a command's type.
type Kind uint8

// The commands. Their numbers are part of the encoding: never reuse one.
const (
	KindEnqueue           Kind = 1  // a publish: Producer, Seq, Size, TTL, Body
	KindCheckout          Kind = 2  // attach a consumer: Consumer, Mode, Credit, Priority, Exclusive, NoAck
	KindCancel            Kind = 3  // detach a consumer (basic.cancel): Consumer
	KindSettle            Kind = 4  // ack: Consumer, IDs
	KindReturn            Kind = 5  // requeue: Consumer, IDs
	KindDiscard           Kind = 6  // reject without requeue (dead-letter "rejected"): Consumer, IDs
	KindCredit            Kind = 7  // credit or prefetch update: Consumer, Credit, Drain
	KindDequeue           Kind = 8  // basic.get: Owner, Settled
	KindPurge             Kind = 9  // drop every ready message
	KindDown              Kind = 10 // Owner went away: its consumers' messages come back, its producer state goes
	KindTick              Kind = 11 // the clock moved: message TTL, x-expires
	KindConfig            Kind = 12 // the queue's arguments and policy: Config
	KindDeadLetterSettled Kind = 13 // the dead-letter target confirmed IDs (at-least-once)
	KindDisconnected      Kind = 14 // Owner's node is unreachable: its messages come back, its consumers pause
	KindReconnected       Kind = 15 // Owner's node is back: its consumers go on
	kindMax                    = KindReconnected
)

var kindNames = [...]string{
	KindEnqueue: "enqueue", KindCheckout: "checkout", KindCancel: "cancel", KindSettle: "settle",
	KindReturn: "return", KindDiscard: "discard", KindCredit: "credit", KindDequeue: "dequeue",
	KindPurge: "purge", KindDown: "down", KindTick: "tick", KindConfig: "config",
	KindDeadLetterSettled: "dead-letter-settled", KindDisconnected: "disconnected", KindReconnected: "reconnected",
}

func (k Kind) String() string {
	if k == 0 || k > kindMax {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// ConsumerKey names a consumer: its owner (the channel or session that attached it, an id the
// host makes unique in the cluster) and its tag. The empty tag is reserved for the owner's
// basic.get deliveries (KindDequeue with Settled false).
type ConsumerKey struct {
	Owner uint64
	Tag   string
}

// CreditMode is how a consumer's credit works.
type CreditMode uint8

const (
	// Prefetch: the consumer may hold Credit unsettled messages at once (0: no limit), AMQP
	// 0-9-1's basic.qos prefetch; settling frees credit.
	Prefetch CreditMode = 0
	// Credited: the consumer gets exactly the credit KindCredit grants (AMQP 1.0 link credit,
	// MQTT's receive maximum); each delivery spends one.
	Credited CreditMode = 1
)

// Overflow is x-overflow.
type Overflow uint8

const (
	DropHead         Overflow = 0 // drop (dead-letter "maxlen") the oldest ready message
	RejectPublish    Overflow = 1 // refuse publishes while over the limit
	RejectPublishDLX Overflow = 2 // refuse, and dead-letter the refused message ("maxlen")
)

// Strategy is x-dead-letter-strategy.
type Strategy uint8

const (
	// AtMostOnce: a dead-lettered message leaves the queue at once; the host republishes it
	// (or drops it when the queue has no dead-letter exchange).
	AtMostOnce Strategy = 0
	// AtLeastOnce: the message stays, counted, until KindDeadLetterSettled says the
	// dead-letter target has it. As in RabbitMQ it needs x-overflow reject-publish; with any
	// other overflow the queue behaves as AtMostOnce.
	AtLeastOnce Strategy = 1
)

// Config is a quorum queue's configuration, from its arguments and policy (the host resolves
// them). -1 means "not set" for the int64 limits.
type Config struct {
	DeliveryLimit  int64 // x-delivery-limit: dead-letter a message returned more than this many times
	MaxLength      int64 // x-max-length: ready messages (with at-least-once dead letters pending)
	MaxLengthBytes int64 // x-max-length-bytes: their sizes
	Overflow       Overflow
	DeadLetter     Strategy
	SingleActive   bool  // x-single-active-consumer
	MessageTTL     int64 // x-message-ttl, milliseconds
	Expires        int64 // x-expires, milliseconds: the queue expires after this long unused
}

// DefaultConfig is a queue with no limits: what a new State starts with.
func DefaultConfig() Config {
	return Config{DeliveryLimit: -1, MaxLength: -1, MaxLengthBytes: -1, MessageTTL: -1, Expires: -1}
}

// Command is one entry of a quorum queue's log. It is a union: Kind says which fields mean
// something (see the Kind constants); the others are zero. Time is the proposer's clock
// (milliseconds since the Unix epoch) when it proposed the command: the state machine has no
// other clock.
type Command struct {
	Kind Kind
	Time int64

	Producer uint64 // Enqueue: the publisher (0: no deduplication)
	Seq      uint64 // Enqueue: the publisher's sequence number, 1, 2, 3...
	Size     uint64 // Enqueue: the message's size as the length limits count it
	TTL      int64  // Enqueue: the message's own TTL in milliseconds (expiration), -1 none
	Body     []byte // Enqueue: the message, opaque (Decode aliases the input: keep it unchanged)

	Consumer  ConsumerKey // Checkout, Cancel, Settle, Return, Discard, Credit
	Mode      CreditMode  // Checkout
	Credit    uint32      // Checkout (prefetch or initial credit), Credit
	Priority  int32       // Checkout: x-priority
	Exclusive bool        // Checkout: basic.consume's exclusive
	NoAck     bool        // Checkout: deliveries are settled as they are made (no credit limit)
	Drain     bool        // Credit: use the credit up now, then give back what is left

	Owner   uint64 // Dequeue, Down, Disconnected, Reconnected
	Settled bool   // Dequeue: no ack required

	IDs    []uint64 // Settle, Return, Discard, DeadLetterSettled: message ids (log indexes)
	Config Config   // Config
}

// Encoding: a version byte, the kind, Time (zig-zag varint), then the kind's fields in the order
// Append writes them: unsigned varints, zig-zag varints for signed values, one byte for enums and
// flags, length-prefixed bytes. Decode refuses anything else, trailing bytes included.
const encodingVersion = 1

// maxTag bounds a consumer tag (AMQP's shortstr).
const maxTag = 255

// Errors of Decode and Restore.
var (
	ErrVersion   = errors.New("fifo: unknown encoding version")
	ErrTruncated = errors.New("fifo: truncated")
	ErrInvalid   = errors.New("fifo: invalid encoding")
)

// Append appends c's encoding to dst.
func (c *Command) Append(dst []byte) []byte {
	dst = append(dst, encodingVersion, byte(c.Kind))
	dst = binary.AppendVarint(dst, c.Time)
	switch c.Kind {
	case KindEnqueue:
		dst = binary.AppendUvarint(dst, c.Producer)
		dst = binary.AppendUvarint(dst, c.Seq)
		dst = binary.AppendUvarint(dst, c.Size)
		dst = binary.AppendVarint(dst, c.TTL)
		dst = binary.AppendUvarint(dst, uint64(len(c.Body)))
		dst = append(dst, c.Body...)
	case KindCheckout:
		dst = appendKey(dst, c.Consumer)
		dst = append(dst, byte(c.Mode))
		dst = binary.AppendUvarint(dst, uint64(c.Credit))
		dst = binary.AppendVarint(dst, int64(c.Priority))
		dst = append(dst, boolByte(c.Exclusive)|boolByte(c.NoAck)<<1)
	case KindCancel:
		dst = appendKey(dst, c.Consumer)
	case KindSettle, KindReturn, KindDiscard:
		dst = appendKey(dst, c.Consumer)
		dst = appendIDs(dst, c.IDs)
	case KindDeadLetterSettled:
		dst = appendIDs(dst, c.IDs)
	case KindCredit:
		dst = appendKey(dst, c.Consumer)
		dst = binary.AppendUvarint(dst, uint64(c.Credit))
		dst = append(dst, boolByte(c.Drain))
	case KindDequeue:
		dst = binary.AppendUvarint(dst, c.Owner)
		dst = append(dst, boolByte(c.Settled))
	case KindDown, KindDisconnected, KindReconnected:
		dst = binary.AppendUvarint(dst, c.Owner)
	case KindConfig:
		dst = appendConfig(dst, &c.Config)
	}
	return dst
}

// Decode decodes one command from b into c, reusing c.IDs' array. c.Body aliases b. It returns
// an error, never panics, on anything Append does not produce.
func Decode(b []byte, c *Command) error {
	var d Decoder
	return d.Decode(b, c)
}

// Decoder decodes commands as Decode does, and reuses the last consumer tag it decoded when the
// next command names the same one, so settling a run of messages allocates nothing. A host keeps
// one per group. The zero Decoder is ready to use.
type Decoder struct {
	tag string
}

// Decode decodes one command from b into c, as the package's Decode.
func (dc *Decoder) Decode(b []byte, c *Command) error {
	ids := c.IDs[:0]
	d := decoder{b: b, tag: dc.tag}
	*c = Command{}
	defer func() { dc.tag = d.tag }()
	if v := d.byte(); d.err == nil && v != encodingVersion {
		return ErrVersion
	}
	c.Kind = Kind(d.byte())
	c.Time = d.varint()
	if d.err != nil {
		return d.err
	}
	switch c.Kind {
	case KindEnqueue:
		c.Producer = d.uvarint()
		c.Seq = d.uvarint()
		c.Size = d.uvarint()
		c.TTL = d.ttl()
		c.Body = d.bytes()
	case KindCheckout:
		c.Consumer = d.key()
		c.Mode = CreditMode(d.enum(byte(Credited)))
		c.Credit = d.uint32()
		c.Priority = d.int32()
		flags := d.enum(3)
		c.Exclusive, c.NoAck = flags&1 != 0, flags&2 != 0
	case KindCancel:
		c.Consumer = d.key()
	case KindSettle, KindReturn, KindDiscard:
		c.Consumer = d.key()
		c.IDs = d.ids(ids)
	case KindDeadLetterSettled:
		c.IDs = d.ids(ids)
	case KindCredit:
		c.Consumer = d.key()
		c.Credit = d.uint32()
		c.Drain = d.bool()
	case KindDequeue:
		c.Owner = d.uvarint()
		c.Settled = d.bool()
	case KindDown, KindDisconnected, KindReconnected:
		c.Owner = d.uvarint()
	case KindPurge, KindTick:
	case KindConfig:
		c.Config = d.config()
	default:
		return fmt.Errorf("%w: command kind %d", ErrInvalid, c.Kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("decoding %v: %w", c.Kind, d.err)
	}
	if c.IDs == nil {
		c.IDs = ids // keep the array for the next Decode
	}
	return nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendKey(dst []byte, k ConsumerKey) []byte {
	dst = binary.AppendUvarint(dst, k.Owner)
	dst = binary.AppendUvarint(dst, uint64(len(k.Tag)))
	return append(dst, k.Tag...)
}

func appendIDs(dst []byte, ids []uint64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = binary.AppendUvarint(dst, id)
	}
	return dst
}

func appendConfig(dst []byte, c *Config) []byte {
	dst = binary.AppendVarint(dst, c.DeliveryLimit)
	dst = binary.AppendVarint(dst, c.MaxLength)
	dst = binary.AppendVarint(dst, c.MaxLengthBytes)
	dst = append(dst, byte(c.Overflow), byte(c.DeadLetter), boolByte(c.SingleActive))
	dst = binary.AppendVarint(dst, c.MessageTTL)
	return binary.AppendVarint(dst, c.Expires)
}

// decoder reads the encoding; the first error sticks and later reads return zeros.
type decoder struct {
	b   []byte
	err error
	tag string // the Decoder's last consumer tag: reused when the same (no allocation)
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(ErrTruncated)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool() bool { return d.enum(1) == 1 }

// enum reads a byte that must be at most maxV.
func (d *decoder) enum(maxV byte) byte {
	v := d.byte()
	if v > maxV {
		d.fail(fmt.Errorf("%w: value %d out of range", ErrInvalid, v))
		return 0
	}
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(ErrTruncated)
		if n < 0 {
			d.err = fmt.Errorf("%w: varint overflows", ErrInvalid)
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(ErrTruncated)
		if n < 0 {
			d.err = fmt.Errorf("%w: varint overflows", ErrInvalid)
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

// ttl reads a TTL or limit: -1 (none) or a non-negative number.
func (d *decoder) ttl() int64 {
	v := d.varint()
	if v < -1 {
		d.fail(fmt.Errorf("%w: negative limit %d", ErrInvalid, v))
		return 0
	}
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail(fmt.Errorf("%w: %d overflows uint32", ErrInvalid, v))
		return 0
	}
	return uint32(v)
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(fmt.Errorf("%w: %d overflows int32", ErrInvalid, v))
		return 0
	}
	return int32(v)
}

// length reads a length that must fit in what is left, each element taking at least min bytes.
func (d *decoder) length(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.fail(ErrTruncated)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.length(1)
	if d.err != nil {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) key() ConsumerKey {
	k := ConsumerKey{Owner: d.uvarint()}
	n := d.length(1)
	if d.err == nil && n > maxTag {
		d.fail(fmt.Errorf("%w: consumer tag of %d bytes", ErrInvalid, n))
	}
	if d.err != nil {
		return ConsumerKey{}
	}
	if string(d.b[:n]) == d.tag {
		k.Tag = d.tag
	} else {
		k.Tag = string(d.b[:n])
		d.tag = k.Tag
	}
	d.b = d.b[n:]
	return k
}

func (d *decoder) ids(dst []uint64) []uint64 {
	n := d.length(1)
	if d.err != nil {
		return dst[:0]
	}
	dst = dst[:0]
	for range n {
		dst = append(dst, d.uvarint())
	}
	return dst
}

func (d *decoder) config() Config {
	c := Config{DeliveryLimit: d.ttl(), MaxLength: d.ttl(), MaxLengthBytes: d.ttl()}
	c.Overflow = Overflow(d.enum(byte(RejectPublishDLX)))
	c.DeadLetter = Strategy(d.enum(byte(AtLeastOnce)))
	c.SingleActive = d.bool()
	c.MessageTTL = d.ttl()
	c.Expires = d.ttl()
	return c
}
