package streamproto

// Super streams and single active consumer: route and partitions (RabbitMQ 3.11's
// PROTOCOL.adoc), consumer update (the server asks a subscription's client for its offset when
// the subscription becomes active or steps down), create and delete super stream (3.13).
const (
	KeyRoute             uint16 = 0x0018
	KeyPartitions        uint16 = 0x0019
	KeyConsumerUpdate    uint16 = 0x001a
	KeyCreateSuperStream uint16 = 0x001d
	KeyDeleteSuperStream uint16 = 0x001e
)

// OffsetNone in a consumer update response keeps the subscription's own offset specification.
const OffsetNone uint16 = 0

func init() {
	genericResponseKeys[KeyCreateSuperStream] = true
	genericResponseKeys[KeyDeleteSuperStream] = true
	for k, n := range map[uint16]string{KeyRoute: "route", KeyPartitions: "partitions",
		KeyConsumerUpdate: "consumer_update", KeyCreateSuperStream: "create_super_stream",
		KeyDeleteSuperStream: "delete_super_stream"} {
		keyNames[k] = n
	}
}

// superCommand returns the command for the keys of this file (nil for any other).
func superCommand(k uint16) Command {
	switch k {
	case KeyRoute:
		return &Route{}
	case KeyRoute | ResponseFlag:
		return &RouteResponse{}
	case KeyPartitions:
		return &Partitions{}
	case KeyPartitions | ResponseFlag:
		return &PartitionsResponse{}
	case KeyConsumerUpdate:
		return &ConsumerUpdate{}
	case KeyConsumerUpdate | ResponseFlag:
		return &ConsumerUpdateResponse{}
	case KeyCreateSuperStream:
		return &CreateSuperStream{}
	case KeyDeleteSuperStream:
		return &DeleteSuperStream{}
	}
	return nil
}

func (e *enc) strs(ss []string) {
	e.u32(uint32(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (r *reader) strs(what string) []string {
	n := r.count(what, 2)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str(what)
	}
	return out
}

// Route (client): the streams a message with RoutingKey published to SuperStream goes to.
type Route struct {
	CorrelationID uint32
	RoutingKey    string
	SuperStream   string
}

func (c *Route) Key() uint16     { return KeyRoute }
func (c *Route) Version() uint16 { return 1 }
func (c *Route) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.RoutingKey); e.str(c.SuperStream) }
func (c *Route) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.RoutingKey = r.str("routing key")
	c.SuperStream = r.str("super stream")
}

// RouteResponse (server).
type RouteResponse struct {
	CorrelationID uint32
	Code          uint16
	Streams       []string
}

func (c *RouteResponse) Key() uint16     { return KeyRoute | ResponseFlag }
func (c *RouteResponse) Version() uint16 { return 1 }
func (c *RouteResponse) encode(e *enc)   { e.u32(c.CorrelationID); e.u16(c.Code); e.strs(c.Streams) }
func (c *RouteResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	c.Streams = r.strs("streams")
}

// Partitions (client): the partition streams of SuperStream, in order.
type Partitions struct {
	CorrelationID uint32
	SuperStream   string
}

func (c *Partitions) Key() uint16     { return KeyPartitions }
func (c *Partitions) Version() uint16 { return 1 }
func (c *Partitions) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.SuperStream) }
func (c *Partitions) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.SuperStream = r.str("super stream")
}

// PartitionsResponse (server).
type PartitionsResponse struct {
	CorrelationID uint32
	Code          uint16
	Streams       []string
}

func (c *PartitionsResponse) Key() uint16     { return KeyPartitions | ResponseFlag }
func (c *PartitionsResponse) Version() uint16 { return 1 }
func (c *PartitionsResponse) encode(e *enc)   { e.u32(c.CorrelationID); e.u16(c.Code); e.strs(c.Streams) }
func (c *PartitionsResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	c.Streams = r.strs("streams")
}

// ConsumerUpdate (server): subscription SubscriptionID of a single active consumer group is now
// Active (or steps down); the client answers with a ConsumerUpdateResponse.
type ConsumerUpdate struct {
	CorrelationID  uint32
	SubscriptionID uint8
	Active         bool
}

func (c *ConsumerUpdate) Key() uint16     { return KeyConsumerUpdate }
func (c *ConsumerUpdate) Version() uint16 { return 1 }
func (c *ConsumerUpdate) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u8(c.SubscriptionID)
	if c.Active {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (c *ConsumerUpdate) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.SubscriptionID = r.u8("subscription id")
	c.Active = r.u8("active") != 0
}

// ConsumerUpdateResponse (client): where the subscription starts reading now that it is active
// (Offset.Type OffsetNone: the subscription's own offset specification).
type ConsumerUpdateResponse struct {
	CorrelationID uint32
	Code          uint16
	Offset        OffsetSpec
}

func (c *ConsumerUpdateResponse) Key() uint16     { return KeyConsumerUpdate | ResponseFlag }
func (c *ConsumerUpdateResponse) Version() uint16 { return 1 }
func (c *ConsumerUpdateResponse) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u16(c.Code)
	e.u16(c.Offset.Type)
	if c.Offset.Type == OffsetOffset || c.Offset.Type == OffsetTimestamp {
		e.u64(c.Offset.Value)
	}
}
func (c *ConsumerUpdateResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	c.Offset.Type = r.u16("offset type")
	switch c.Offset.Type {
	case OffsetNone, OffsetFirst, OffsetLast, OffsetNext:
	case OffsetOffset, OffsetTimestamp:
		c.Offset.Value = r.u64("offset")
	default:
		r.fail("unknown offset type %d", c.Offset.Type)
	}
}

// CreateSuperStream (client, RabbitMQ 3.13): a direct exchange Name bound to the partition
// streams with the binding keys (one per partition, in order); Arguments are the partitions'
// stream arguments, as in Create.
type CreateSuperStream struct {
	CorrelationID uint32
	Name          string
	Partitions    []string
	BindingKeys   []string
	Arguments     []KV
}

func (c *CreateSuperStream) Key() uint16     { return KeyCreateSuperStream }
func (c *CreateSuperStream) Version() uint16 { return 1 }
func (c *CreateSuperStream) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.str(c.Name)
	e.strs(c.Partitions)
	e.strs(c.BindingKeys)
	e.kvs(c.Arguments)
}
func (c *CreateSuperStream) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Name = r.str("super stream")
	c.Partitions = r.strs("partitions")
	c.BindingKeys = r.strs("binding keys")
	c.Arguments = r.kvs("arguments")
}

// DeleteSuperStream (client, RabbitMQ 3.13): the exchange and its partition streams.
type DeleteSuperStream struct {
	CorrelationID uint32
	Name          string
}

func (c *DeleteSuperStream) Key() uint16     { return KeyDeleteSuperStream }
func (c *DeleteSuperStream) Version() uint16 { return 1 }
func (c *DeleteSuperStream) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.Name) }
func (c *DeleteSuperStream) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Name = r.str("super stream")
}
