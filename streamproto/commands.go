package streamproto

import "encoding/binary"

// Command is one decoded command or response.
type Command interface {
	Key() uint16     // the frame key, with ResponseFlag for a response
	Version() uint16 // the frame version
	encode(e *enc)
	decode(r *reader)
}

// Append appends c as a whole frame (size, key, version, fields) to dst.
// It fails, leaving dst's contents unchanged, when a string is longer than
// the protocol's int16 length allows.
func Append(dst []byte, c Command) ([]byte, error) {
	start := len(dst)
	e := enc{b: append(dst, 0, 0, 0, 0)}
	e.u16(c.Key())
	e.u16(c.Version())
	c.encode(&e)
	if e.err != nil {
		return dst[:start], e.err
	}
	binary.BigEndian.PutUint32(e.b[start:], uint32(len(e.b)-start-4))
	return e.b, nil
}

// genericResponseKeys are the requests answered by a bare
// correlation id and response code.
var genericResponseKeys = map[uint16]bool{
	KeyDeclarePublisher: true, KeyDeletePublisher: true, KeySubscribe: true, KeyUnsubscribe: true,
	KeyCreate: true, KeyDelete: true, KeyClose: true,
}

// Decode decodes a frame's command. Unknown keys, unsupported versions,
// short fields and bytes left over are errors with CodeUnknownFrame.
// Byte fields (messages, SASL data, chunk data) alias f.Payload.
func Decode(f Frame) (Command, error) {
	var c Command
	maxVersion := uint16(1)
	switch k := f.Key; {
	case k == KeyDeclarePublisher:
		c = &DeclarePublisher{}
	case k == KeyPublish:
		c, maxVersion = &Publish{V: f.Version}, 2
	case k == KeyPublishConfirm:
		c = &PublishConfirm{}
	case k == KeyPublishError:
		c = &PublishError{}
	case k == KeySubscribe:
		c = &Subscribe{}
	case k == KeyDeliver:
		c, maxVersion = &Deliver{V: f.Version}, 2
	case k == KeyCredit:
		c = &Credit{}
	case k == KeyCredit|ResponseFlag:
		c = &CreditResponse{}
	case k == KeyStoreOffset:
		c = &StoreOffset{}
	case k == KeyQueryOffset:
		c = &QueryOffset{}
	case k == KeyQueryOffset|ResponseFlag:
		c = &QueryOffsetResponse{}
	case k == KeyCreate:
		c = &Create{}
	case k == KeyDelete:
		c = &Delete{}
	case k == KeyMetadata:
		c = &MetadataQuery{}
	case k == KeyMetadata|ResponseFlag:
		c = &Metadata{}
	case k == KeyPeerProperties:
		c = &PeerProperties{}
	case k == KeyPeerProperties|ResponseFlag:
		c = &PeerPropertiesResponse{}
	case k == KeySaslHandshake:
		c = &SaslHandshake{}
	case k == KeySaslHandshake|ResponseFlag:
		c = &SaslHandshakeResponse{}
	case k == KeySaslAuthenticate:
		c = &SaslAuthenticate{}
	case k == KeySaslAuthenticate|ResponseFlag:
		c = &SaslAuthenticateResponse{}
	case k == KeyTune:
		c = &Tune{}
	case k == KeyTune|ResponseFlag:
		c = &Tune{Response: true}
	case k == KeyOpen:
		c = &Open{}
	case k == KeyOpen|ResponseFlag:
		c = &OpenResponse{}
	case k == KeyClose:
		c = &Close{}
	case k == KeyHeartbeat:
		c = &Heartbeat{}
	case k == KeyDeletePublisher:
		c = &DeletePublisher{}
	case k == KeyUnsubscribe:
		c = &Unsubscribe{}
	case k == KeyQueryPublisherSequence:
		c = &QueryPublisherSequence{}
	case k == KeyQueryPublisherSequence|ResponseFlag:
		c = &QueryPublisherSequenceResponse{}
	case k == KeyExchangeCommandVersions:
		c = &ExchangeCommandVersions{}
	case k == KeyExchangeCommandVersions|ResponseFlag:
		c = &ExchangeCommandVersions{Response: true}
	case k == KeyMetadataUpdate:
		c = &MetadataUpdate{}
	case k == KeyStreamStats:
		c = &StreamStats{}
	case k == KeyStreamStats|ResponseFlag:
		c = &StreamStatsResponse{}
	case k&ResponseFlag != 0 && genericResponseKeys[k&^ResponseFlag]:
		c = &Response{For: k &^ ResponseFlag}
	default:
		if c = superCommand(k); c == nil {
			return nil, errorf(CodeUnknownFrame, "unknown command key %#04x", f.Key)
		}
	}
	if f.Version < 1 || f.Version > maxVersion {
		return nil, errorf(CodeUnknownFrame, "command key %#04x version %d is not supported", f.Key, f.Version)
	}
	r := reader{b: f.Payload}
	c.decode(&r)
	if err := r.done(f.Key); err != nil {
		return nil, err
	}
	return c, nil
}

var keyNames = map[uint16]string{
	KeyDeclarePublisher: "declare_publisher", KeyPublish: "publish", KeyPublishConfirm: "publish_confirm",
	KeyPublishError: "publish_error", KeySubscribe: "subscribe", KeyDeliver: "deliver", KeyCredit: "credit",
	KeyStoreOffset: "store_offset", KeyQueryOffset: "query_offset", KeyCreate: "create", KeyDelete: "delete",
	KeyMetadata: "metadata", KeyPeerProperties: "peer_properties", KeySaslHandshake: "sasl_handshake",
	KeySaslAuthenticate: "sasl_authenticate", KeyTune: "tune", KeyOpen: "open", KeyClose: "close",
	KeyHeartbeat: "heartbeat", KeyDeletePublisher: "delete_publisher", KeyUnsubscribe: "unsubscribe",
	KeyQueryPublisherSequence: "query_publisher_sequence", KeyExchangeCommandVersions: "exchange_command_versions",
	KeyStreamStats: "stream_stats",
}

func keyName(k uint16) string {
	n, ok := keyNames[k&^ResponseFlag]
	if !ok {
		n = "unknown"
	}
	if k&ResponseFlag != 0 {
		n += " response"
	}
	return n
}

// Response is the bare response (correlation id and code) to
// DeclarePublisher, DeletePublisher, Subscribe, Unsubscribe, Create,
// Delete and Close.
type Response struct {
	For           uint16 // the request's key
	CorrelationID uint32
	Code          uint16
}

func (c *Response) Key() uint16     { return c.For | ResponseFlag }
func (c *Response) Version() uint16 { return 1 }
func (c *Response) encode(e *enc)   { e.u32(c.CorrelationID); e.u16(c.Code) }
func (c *Response) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
}

// DeclarePublisher (client): declare publisher id PublisherID on Stream;
// Reference names it for deduplication ("" is null).
type DeclarePublisher struct {
	CorrelationID uint32
	PublisherID   uint8
	Reference     string
	Stream        string
}

func (c *DeclarePublisher) Key() uint16     { return KeyDeclarePublisher }
func (c *DeclarePublisher) Version() uint16 { return 1 }
func (c *DeclarePublisher) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u8(c.PublisherID)
	e.str(c.Reference)
	e.str(c.Stream)
}
func (c *DeclarePublisher) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.PublisherID = r.u8("publisher id")
	c.Reference = r.str("publisher reference")
	c.Stream = r.str("stream")
}

// PublishedMessage is one message of a Publish, or a sub-entry batch of messages under one
// publishing id (SubEntry; the clients' SetSubEntrySize).
type PublishedMessage struct {
	PublishingID uint64
	FilterValue  string // version 2 only
	Message      []byte // an AMQP 1.0 message as the clients encode it; not decoded here

	// With SubEntry, Message is a sub-entry batch's data: Records records, each an int32 size
	// and the message, compressed with Compression (SubEntryRecords decodes them) and
	// UncompressedSize bytes long uncompressed. On the wire the entry type byte (high bit set,
	// the compression in bits 4-6) stands where a message's size would.
	SubEntry         bool
	Compression      uint8
	Records          uint16
	UncompressedSize uint32
}

// Publish (client). V is 1, or 2 with filter values (0 encodes as 1).
type Publish struct {
	V           uint16
	PublisherID uint8
	Messages    []PublishedMessage
}

func (c *Publish) Key() uint16 { return KeyPublish }
func (c *Publish) Version() uint16 {
	if c.V == 0 {
		return 1
	}
	return c.V
}
func (c *Publish) encode(e *enc) {
	e.u8(c.PublisherID)
	e.u32(uint32(len(c.Messages)))
	for _, m := range c.Messages {
		e.u64(m.PublishingID)
		if c.Version() >= 2 {
			e.str(m.FilterValue)
		}
		if m.SubEntry {
			e.u8(0x80 | (m.Compression&7)<<4)
			e.u16(m.Records)
			e.u32(m.UncompressedSize)
		}
		e.bytes(m.Message)
	}
}
func (c *Publish) decode(r *reader) {
	c.PublisherID = r.u8("publisher id")
	min := 12
	if c.Version() >= 2 {
		min += 2
	}
	n := r.count("published messages", min)
	if n > 0 {
		c.Messages = make([]PublishedMessage, n)
	}
	for i := range c.Messages {
		m := &c.Messages[i]
		m.PublishingID = r.u64("publishing id")
		if c.Version() >= 2 {
			m.FilterValue = r.str("filter value")
		}
		if r.err == nil && len(r.b) > 0 && r.b[0]&0x80 != 0 {
			t := r.u8("entry type")
			m.SubEntry, m.Compression = true, t>>4&7
			m.Records = r.u16("sub-entry records")
			m.UncompressedSize = r.u32("sub-entry uncompressed size")
		}
		m.Message = r.bytes("message")
	}
}

// PublishConfirm (server): the publishing ids now safely stored.
type PublishConfirm struct {
	PublisherID   uint8
	PublishingIDs []uint64
}

func (c *PublishConfirm) Key() uint16     { return KeyPublishConfirm }
func (c *PublishConfirm) Version() uint16 { return 1 }
func (c *PublishConfirm) encode(e *enc) {
	e.u8(c.PublisherID)
	e.u32(uint32(len(c.PublishingIDs)))
	for _, id := range c.PublishingIDs {
		e.u64(id)
	}
}
func (c *PublishConfirm) decode(r *reader) {
	c.PublisherID = r.u8("publisher id")
	if n := r.count("publishing ids", 8); n > 0 {
		c.PublishingIDs = make([]uint64, n)
		for i := range c.PublishingIDs {
			c.PublishingIDs[i] = r.u64("publishing id")
		}
	}
}

// PublishingError is one refused message of a PublishError.
type PublishingError struct {
	PublishingID uint64
	Code         uint16
}

// PublishError (server): messages refused, each with a response code.
type PublishError struct {
	PublisherID uint8
	Errors      []PublishingError
}

func (c *PublishError) Key() uint16     { return KeyPublishError }
func (c *PublishError) Version() uint16 { return 1 }
func (c *PublishError) encode(e *enc) {
	e.u8(c.PublisherID)
	e.u32(uint32(len(c.Errors)))
	for _, pe := range c.Errors {
		e.u64(pe.PublishingID)
		e.u16(pe.Code)
	}
}
func (c *PublishError) decode(r *reader) {
	c.PublisherID = r.u8("publisher id")
	if n := r.count("publishing errors", 10); n > 0 {
		c.Errors = make([]PublishingError, n)
		for i := range c.Errors {
			c.Errors[i] = PublishingError{r.u64("publishing id"), r.u16("code")}
		}
	}
}

// Offset specification types of Subscribe.
const (
	OffsetFirst     uint16 = 1
	OffsetLast      uint16 = 2
	OffsetNext      uint16 = 3
	OffsetOffset    uint16 = 4 // Value is an offset
	OffsetTimestamp uint16 = 5 // Value is a timestamp in milliseconds (int64)
)

// OffsetSpec says where a subscription starts. Value is present on the
// wire only for OffsetOffset and OffsetTimestamp.
type OffsetSpec struct {
	Type  uint16
	Value uint64
}

// Subscribe (client).
type Subscribe struct {
	CorrelationID  uint32
	SubscriptionID uint8
	Stream         string
	Offset         OffsetSpec
	Credit         uint16
	Properties     []KV // e.g. "name", "single-active-consumer", "filter.0"
}

func (c *Subscribe) Key() uint16     { return KeySubscribe }
func (c *Subscribe) Version() uint16 { return 1 }
func (c *Subscribe) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u8(c.SubscriptionID)
	e.str(c.Stream)
	e.u16(c.Offset.Type)
	if c.Offset.Type == OffsetOffset || c.Offset.Type == OffsetTimestamp {
		e.u64(c.Offset.Value)
	}
	e.u16(c.Credit)
	if len(c.Properties) > 0 {
		e.kvs(c.Properties)
	}
}
func (c *Subscribe) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.SubscriptionID = r.u8("subscription id")
	c.Stream = r.str("stream")
	c.Offset.Type = r.u16("offset type")
	switch c.Offset.Type {
	case OffsetFirst, OffsetLast, OffsetNext:
	case OffsetOffset, OffsetTimestamp:
		c.Offset.Value = r.u64("offset")
	default:
		r.fail("unknown offset type %d", c.Offset.Type)
	}
	c.Credit = r.u16("credit")
	// Properties are optional: clients leave them out when there are none.
	if r.err == nil && len(r.b) > 0 {
		c.Properties = r.kvs("properties")
	}
}

// ChunkHeader is the osiris chunk header at the start of a Deliver.
type ChunkHeader struct {
	MagicVersion     uint8
	ChunkType        uint8 // 0 user data, 1 tracking delta, 2 tracking snapshot
	NumEntries       uint16
	NumRecords       uint32
	Timestamp        int64 // milliseconds
	Epoch            uint64
	ChunkFirstOffset uint64
	ChunkCRC         uint32 // CRC-32 (IEEE) of the entry data
	DataLength       uint32
	TrailerLength    uint32
	Reserved         uint32 // bloom filter size in its first byte since RabbitMQ 3.13
}

const chunkHeaderLen = 1 + 1 + 2 + 4 + 8 + 8 + 8 + 4 + 4 + 4 + 4

// Deliver (server): one chunk for a subscription. Data is everything after
// the chunk header (entries; not decoded by this package yet). V is 1, or 2
// with CommittedChunkID.
type Deliver struct {
	V                uint16
	SubscriptionID   uint8
	CommittedChunkID uint64 // version 2
	Chunk            ChunkHeader
	Data             []byte
}

func (c *Deliver) Key() uint16 { return KeyDeliver }
func (c *Deliver) Version() uint16 {
	if c.V == 0 {
		return 1
	}
	return c.V
}
func (c *Deliver) encode(e *enc) {
	e.u8(c.SubscriptionID)
	if c.Version() >= 2 {
		e.u64(c.CommittedChunkID)
	}
	h := &c.Chunk
	e.u8(h.MagicVersion)
	e.u8(h.ChunkType)
	e.u16(h.NumEntries)
	e.u32(h.NumRecords)
	e.u64(uint64(h.Timestamp))
	e.u64(h.Epoch)
	e.u64(h.ChunkFirstOffset)
	e.u32(h.ChunkCRC)
	e.u32(h.DataLength)
	e.u32(h.TrailerLength)
	e.u32(h.Reserved)
	e.b = append(e.b, c.Data...)
}
func (c *Deliver) decode(r *reader) {
	c.SubscriptionID = r.u8("subscription id")
	if c.Version() >= 2 {
		c.CommittedChunkID = r.u64("committed chunk id")
	}
	if !r.need(chunkHeaderLen, "chunk header") {
		return
	}
	h := &c.Chunk
	h.MagicVersion = r.u8("magic version")
	h.ChunkType = r.u8("chunk type")
	h.NumEntries = r.u16("entries")
	h.NumRecords = r.u32("records")
	h.Timestamp = int64(r.u64("timestamp"))
	h.Epoch = r.u64("epoch")
	h.ChunkFirstOffset = r.u64("chunk first offset")
	h.ChunkCRC = r.u32("chunk crc")
	h.DataLength = r.u32("data length")
	h.TrailerLength = r.u32("trailer length")
	h.Reserved = r.u32("reserved")
	if uint64(h.DataLength) > uint64(len(r.b)) {
		r.fail("chunk data length %d but %d bytes follow", h.DataLength, len(r.b))
		return
	}
	if d := r.rest(); len(d) > 0 {
		c.Data = d
	}
}

// Credit (client): more chunks for a subscription.
type Credit struct {
	SubscriptionID uint8
	Credit         uint16
}

func (c *Credit) Key() uint16     { return KeyCredit }
func (c *Credit) Version() uint16 { return 1 }
func (c *Credit) encode(e *enc)   { e.u8(c.SubscriptionID); e.u16(c.Credit) }
func (c *Credit) decode(r *reader) {
	c.SubscriptionID = r.u8("subscription id")
	c.Credit = r.u16("credit")
}

// CreditResponse (server), sent only when a Credit fails.
type CreditResponse struct {
	Code           uint16
	SubscriptionID uint8
}

func (c *CreditResponse) Key() uint16     { return KeyCredit | ResponseFlag }
func (c *CreditResponse) Version() uint16 { return 1 }
func (c *CreditResponse) encode(e *enc)   { e.u16(c.Code); e.u8(c.SubscriptionID) }
func (c *CreditResponse) decode(r *reader) {
	c.Code = r.u16("response code")
	c.SubscriptionID = r.u8("subscription id")
}

// StoreOffset (client): store Offset for consumer Reference on Stream. No response.
type StoreOffset struct {
	Reference string
	Stream    string
	Offset    uint64
}

func (c *StoreOffset) Key() uint16     { return KeyStoreOffset }
func (c *StoreOffset) Version() uint16 { return 1 }
func (c *StoreOffset) encode(e *enc)   { e.str(c.Reference); e.str(c.Stream); e.u64(c.Offset) }
func (c *StoreOffset) decode(r *reader) {
	c.Reference = r.str("reference")
	c.Stream = r.str("stream")
	c.Offset = r.u64("offset")
}

// QueryOffset (client).
type QueryOffset struct {
	CorrelationID uint32
	Reference     string
	Stream        string
}

func (c *QueryOffset) Key() uint16     { return KeyQueryOffset }
func (c *QueryOffset) Version() uint16 { return 1 }
func (c *QueryOffset) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.Reference); e.str(c.Stream) }
func (c *QueryOffset) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Reference = r.str("reference")
	c.Stream = r.str("stream")
}

// QueryOffsetResponse (server).
type QueryOffsetResponse struct {
	CorrelationID uint32
	Code          uint16
	Offset        uint64
}

func (c *QueryOffsetResponse) Key() uint16     { return KeyQueryOffset | ResponseFlag }
func (c *QueryOffsetResponse) Version() uint16 { return 1 }
func (c *QueryOffsetResponse) encode(e *enc)   { e.u32(c.CorrelationID); e.u16(c.Code); e.u64(c.Offset) }
func (c *QueryOffsetResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	c.Offset = r.u64("offset")
}

// Create (client): create Stream with Arguments such as "max-length-bytes".
type Create struct {
	CorrelationID uint32
	Stream        string
	Arguments     []KV
}

func (c *Create) Key() uint16     { return KeyCreate }
func (c *Create) Version() uint16 { return 1 }
func (c *Create) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.Stream); e.kvs(c.Arguments) }
func (c *Create) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Stream = r.str("stream")
	c.Arguments = r.kvs("arguments")
}

// Delete (client): delete Stream.
type Delete struct {
	CorrelationID uint32
	Stream        string
}

func (c *Delete) Key() uint16     { return KeyDelete }
func (c *Delete) Version() uint16 { return 1 }
func (c *Delete) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.Stream) }
func (c *Delete) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Stream = r.str("stream")
}

// MetadataQuery (client): metadata of Streams.
type MetadataQuery struct {
	CorrelationID uint32
	Streams       []string
}

func (c *MetadataQuery) Key() uint16     { return KeyMetadata }
func (c *MetadataQuery) Version() uint16 { return 1 }
func (c *MetadataQuery) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u32(uint32(len(c.Streams)))
	for _, s := range c.Streams {
		e.str(s)
	}
}
func (c *MetadataQuery) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	if n := r.count("streams", 2); n > 0 {
		c.Streams = make([]string, n)
		for i := range c.Streams {
			c.Streams[i] = r.str("stream")
		}
	}
}

// Broker is a node in a Metadata response.
type Broker struct {
	Reference uint16
	Host      string
	Port      uint32
}

// StreamMetadata is one stream in a Metadata response.
type StreamMetadata struct {
	Stream   string
	Code     uint16
	Leader   uint16 // a Broker.Reference
	Replicas []uint16
}

// Metadata (server): the response to MetadataQuery.
type Metadata struct {
	CorrelationID uint32
	Brokers       []Broker
	Streams       []StreamMetadata
}

func (c *Metadata) Key() uint16     { return KeyMetadata | ResponseFlag }
func (c *Metadata) Version() uint16 { return 1 }
func (c *Metadata) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u32(uint32(len(c.Brokers)))
	for _, b := range c.Brokers {
		e.u16(b.Reference)
		e.str(b.Host)
		e.u32(b.Port)
	}
	e.u32(uint32(len(c.Streams)))
	for _, s := range c.Streams {
		e.str(s.Stream)
		e.u16(s.Code)
		e.u16(s.Leader)
		e.u32(uint32(len(s.Replicas)))
		for _, rep := range s.Replicas {
			e.u16(rep)
		}
	}
}
func (c *Metadata) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	if n := r.count("brokers", 8); n > 0 {
		c.Brokers = make([]Broker, n)
		for i := range c.Brokers {
			c.Brokers[i] = Broker{r.u16("broker reference"), r.str("host"), r.u32("port")}
		}
	}
	if n := r.count("stream metadata", 10); n > 0 {
		c.Streams = make([]StreamMetadata, n)
		for i := range c.Streams {
			s := &c.Streams[i]
			s.Stream = r.str("stream")
			s.Code = r.u16("response code")
			s.Leader = r.u16("leader reference")
			if m := r.count("replicas", 2); m > 0 {
				s.Replicas = make([]uint16, m)
				for j := range s.Replicas {
					s.Replicas[j] = r.u16("replica reference")
				}
			}
		}
	}
}

// PeerProperties (client): the client's properties, first on a connection.
type PeerProperties struct {
	CorrelationID uint32
	Properties    []KV
}

func (c *PeerProperties) Key() uint16     { return KeyPeerProperties }
func (c *PeerProperties) Version() uint16 { return 1 }
func (c *PeerProperties) encode(e *enc)   { e.u32(c.CorrelationID); e.kvs(c.Properties) }
func (c *PeerProperties) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Properties = r.kvs("peer properties")
}

// PeerPropertiesResponse (server): the server's properties.
type PeerPropertiesResponse struct {
	CorrelationID uint32
	Code          uint16
	Properties    []KV
}

func (c *PeerPropertiesResponse) Key() uint16     { return KeyPeerProperties | ResponseFlag }
func (c *PeerPropertiesResponse) Version() uint16 { return 1 }
func (c *PeerPropertiesResponse) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u16(c.Code)
	e.kvs(c.Properties)
}
func (c *PeerPropertiesResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	c.Properties = r.kvs("peer properties")
}

// SaslHandshake (client): asks for the mechanisms.
type SaslHandshake struct{ CorrelationID uint32 }

func (c *SaslHandshake) Key() uint16      { return KeySaslHandshake }
func (c *SaslHandshake) Version() uint16  { return 1 }
func (c *SaslHandshake) encode(e *enc)    { e.u32(c.CorrelationID) }
func (c *SaslHandshake) decode(r *reader) { c.CorrelationID = r.u32("correlation id") }

// SaslHandshakeResponse (server): the mechanisms offered.
type SaslHandshakeResponse struct {
	CorrelationID uint32
	Code          uint16
	Mechanisms    []string
}

func (c *SaslHandshakeResponse) Key() uint16     { return KeySaslHandshake | ResponseFlag }
func (c *SaslHandshakeResponse) Version() uint16 { return 1 }
func (c *SaslHandshakeResponse) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u16(c.Code)
	e.u32(uint32(len(c.Mechanisms)))
	for _, m := range c.Mechanisms {
		e.str(m)
	}
}
func (c *SaslHandshakeResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	if n := r.count("mechanisms", 2); n > 0 {
		c.Mechanisms = make([]string, n)
		for i := range c.Mechanisms {
			c.Mechanisms[i] = r.str("mechanism")
		}
	}
}

// SaslAuthenticate (client): Data is e.g. "\x00user\x00password" for PLAIN.
type SaslAuthenticate struct {
	CorrelationID uint32
	Mechanism     string
	Data          []byte
}

func (c *SaslAuthenticate) Key() uint16     { return KeySaslAuthenticate }
func (c *SaslAuthenticate) Version() uint16 { return 1 }
func (c *SaslAuthenticate) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.str(c.Mechanism)
	e.bytes(c.Data)
}
func (c *SaslAuthenticate) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Mechanism = r.str("mechanism")
	c.Data = r.bytes("sasl data")
}

// SaslAuthenticateResponse (server). Data (a challenge) is on the wire only
// when non-nil.
type SaslAuthenticateResponse struct {
	CorrelationID uint32
	Code          uint16
	Data          []byte
}

func (c *SaslAuthenticateResponse) Key() uint16     { return KeySaslAuthenticate | ResponseFlag }
func (c *SaslAuthenticateResponse) Version() uint16 { return 1 }
func (c *SaslAuthenticateResponse) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u16(c.Code)
	if c.Data != nil {
		e.bytes(c.Data)
	}
}
func (c *SaslAuthenticateResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	if r.err == nil && len(r.b) > 0 {
		c.Data = r.bytes("sasl data")
		if c.Data == nil {
			c.Data = []byte{}
		}
	}
}

// Tune: the server proposes FrameMax and Heartbeat (seconds); the client
// answers with the values it takes, as a response (Response set).
type Tune struct {
	FrameMax  uint32
	Heartbeat uint32
	Response  bool
}

func (c *Tune) Key() uint16 {
	if c.Response {
		return KeyTune | ResponseFlag
	}
	return KeyTune
}
func (c *Tune) Version() uint16 { return 1 }
func (c *Tune) encode(e *enc)   { e.u32(c.FrameMax); e.u32(c.Heartbeat) }
func (c *Tune) decode(r *reader) {
	c.FrameMax = r.u32("frame max")
	c.Heartbeat = r.u32("heartbeat")
}

// Open (client): open VirtualHost.
type Open struct {
	CorrelationID uint32
	VirtualHost   string
}

func (c *Open) Key() uint16     { return KeyOpen }
func (c *Open) Version() uint16 { return 1 }
func (c *Open) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.VirtualHost) }
func (c *Open) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.VirtualHost = r.str("virtual host")
}

// OpenResponse (server). Properties (e.g. advertised_host) are on the wire
// when the code is OK (the Go client always reads them) or when given.
type OpenResponse struct {
	CorrelationID uint32
	Code          uint16
	Properties    []KV
}

func (c *OpenResponse) Key() uint16     { return KeyOpen | ResponseFlag }
func (c *OpenResponse) Version() uint16 { return 1 }
func (c *OpenResponse) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u16(c.Code)
	if c.Code == CodeOK || len(c.Properties) > 0 {
		e.kvs(c.Properties)
	}
}
func (c *OpenResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	if r.err == nil && len(r.b) > 0 {
		c.Properties = r.kvs("connection properties")
	}
}

// Close (either side).
type Close struct {
	CorrelationID uint32
	Code          uint16
	Reason        string
}

func (c *Close) Key() uint16     { return KeyClose }
func (c *Close) Version() uint16 { return 1 }
func (c *Close) encode(e *enc)   { e.u32(c.CorrelationID); e.u16(c.Code); e.str(c.Reason) }
func (c *Close) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("closing code")
	c.Reason = r.str("closing reason")
}

// Heartbeat (either side): no fields.
type Heartbeat struct{}

func (c *Heartbeat) Key() uint16     { return KeyHeartbeat }
func (c *Heartbeat) Version() uint16 { return 1 }
func (c *Heartbeat) encode(*enc)     {}
func (c *Heartbeat) decode(*reader)  {}

// DeletePublisher (client): answered by a Response.
type DeletePublisher struct {
	CorrelationID uint32
	PublisherID   uint8
}

func (c *DeletePublisher) Key() uint16     { return KeyDeletePublisher }
func (c *DeletePublisher) Version() uint16 { return 1 }
func (c *DeletePublisher) encode(e *enc)   { e.u32(c.CorrelationID); e.u8(c.PublisherID) }
func (c *DeletePublisher) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.PublisherID = r.u8("publisher id")
}

// Unsubscribe (client): answered by a Response.
type Unsubscribe struct {
	CorrelationID  uint32
	SubscriptionID uint8
}

func (c *Unsubscribe) Key() uint16     { return KeyUnsubscribe }
func (c *Unsubscribe) Version() uint16 { return 1 }
func (c *Unsubscribe) encode(e *enc)   { e.u32(c.CorrelationID); e.u8(c.SubscriptionID) }
func (c *Unsubscribe) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.SubscriptionID = r.u8("subscription id")
}

// QueryPublisherSequence (client): the last publishing id stored for the
// named publisher Reference on Stream (deduplication).
type QueryPublisherSequence struct {
	CorrelationID uint32
	Reference     string
	Stream        string
}

func (c *QueryPublisherSequence) Key() uint16     { return KeyQueryPublisherSequence }
func (c *QueryPublisherSequence) Version() uint16 { return 1 }
func (c *QueryPublisherSequence) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.str(c.Reference)
	e.str(c.Stream)
}
func (c *QueryPublisherSequence) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Reference = r.str("publisher reference")
	c.Stream = r.str("stream")
}

// QueryPublisherSequenceResponse (server).
type QueryPublisherSequenceResponse struct {
	CorrelationID uint32
	Code          uint16
	Sequence      uint64
}

func (c *QueryPublisherSequenceResponse) Key() uint16 {
	return KeyQueryPublisherSequence | ResponseFlag
}
func (c *QueryPublisherSequenceResponse) Version() uint16 { return 1 }
func (c *QueryPublisherSequenceResponse) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u16(c.Code)
	e.u64(c.Sequence)
}
func (c *QueryPublisherSequenceResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	c.Sequence = r.u64("sequence")
}
