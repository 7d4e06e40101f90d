package streamproto

import "encoding/binary"

// Command keys added to the core set.
const (
	KeyExchangeCommandVersions uint16 = 27
	KeyStreamStats             uint16 = 28
)

// CommandVersion is one command's supported version range.
type CommandVersion struct {
	Key, Min, Max uint16
}

// ExchangeCommandVersions (client) and its response (Response true: with a code).
type ExchangeCommandVersions struct {
	Response      bool
	CorrelationID uint32
	Code          uint16 // response only
	Versions      []CommandVersion
}

func (c *ExchangeCommandVersions) Key() uint16 {
	if c.Response {
		return KeyExchangeCommandVersions | ResponseFlag
	}
	return KeyExchangeCommandVersions
}
func (c *ExchangeCommandVersions) Version() uint16 { return 1 }
func (c *ExchangeCommandVersions) encode(e *enc) {
	e.u32(c.CorrelationID)
	if c.Response {
		e.u16(c.Code)
	}
	e.u32(uint32(len(c.Versions)))
	for _, v := range c.Versions {
		e.u16(v.Key)
		e.u16(v.Min)
		e.u16(v.Max)
	}
}
func (c *ExchangeCommandVersions) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	if c.Response {
		c.Code = r.u16("response code")
	}
	if n := r.count("command versions", 6); n > 0 {
		c.Versions = make([]CommandVersion, n)
		for i := range c.Versions {
			c.Versions[i] = CommandVersion{r.u16("key"), r.u16("min version"), r.u16("max version")}
		}
	}
}

// StreamStats (client): the stream's statistics.
type StreamStats struct {
	CorrelationID uint32
	Stream        string
}

func (c *StreamStats) Key() uint16     { return KeyStreamStats }
func (c *StreamStats) Version() uint16 { return 1 }
func (c *StreamStats) encode(e *enc)   { e.u32(c.CorrelationID); e.str(c.Stream) }
func (c *StreamStats) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Stream = r.str("stream")
}

// Stat is one statistic of a StreamStatsResponse.
type Stat struct {
	Name  string
	Value int64
}

// StreamStatsResponse (server): first_chunk_id, committed_chunk_id, ...
type StreamStatsResponse struct {
	CorrelationID uint32
	Code          uint16
	Stats         []Stat
}

func (c *StreamStatsResponse) Key() uint16     { return KeyStreamStats | ResponseFlag }
func (c *StreamStatsResponse) Version() uint16 { return 1 }
func (c *StreamStatsResponse) encode(e *enc) {
	e.u32(c.CorrelationID)
	e.u16(c.Code)
	e.u32(uint32(len(c.Stats)))
	for _, s := range c.Stats {
		e.str(s.Name)
		e.u64(uint64(s.Value))
	}
}
func (c *StreamStatsResponse) decode(r *reader) {
	c.CorrelationID = r.u32("correlation id")
	c.Code = r.u16("response code")
	if n := r.count("stats", 10); n > 0 {
		c.Stats = make([]Stat, n)
		for i := range c.Stats {
			c.Stats[i] = Stat{r.str("stat"), int64(r.u64("value"))}
		}
	}
}

// AppendSimpleEntry appends one entry of a chunk's data in osiris's simple
// format: a 0 bit and a 31-bit size, then the record (an AMQP 1.0 message).
func AppendSimpleEntry(dst, record []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(record))&0x7FFFFFFF)
	return append(dst, record...)
}

// SplitEntries splits a chunk's data into its simple entries' records
// (aliasing data). Sub-batch entries (the high bit set) are refused.
func SplitEntries(data []byte, max int) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(out) >= max {
			return nil, errorf(CodeUnknownFrame, "chunk data holds more than %d entries", max)
		}
		if len(data) < 4 {
			return nil, errorf(CodeUnknownFrame, "chunk entry header truncated")
		}
		h := binary.BigEndian.Uint32(data)
		if h&0x80000000 != 0 {
			return nil, errorf(CodeUnknownFrame, "sub-batch entries are not supported")
		}
		if uint64(h) > uint64(len(data)-4) {
			return nil, errorf(CodeUnknownFrame, "chunk entry of %d bytes but %d follow", h, len(data)-4)
		}
		out = append(out, data[4:4+h:4+h])
		data = data[4+h:]
	}
	return out, nil
}

// MetadataUpdate (server): a stream a publisher or subscription uses is
// no longer available (Code CodeStreamNotAvailable).
type MetadataUpdate struct {
	Code   uint16
	Stream string
}

func (c *MetadataUpdate) Key() uint16     { return KeyMetadataUpdate }
func (c *MetadataUpdate) Version() uint16 { return 1 }
func (c *MetadataUpdate) encode(e *enc)   { e.u16(c.Code); e.str(c.Stream) }
func (c *MetadataUpdate) decode(r *reader) {
	c.Code = r.u16("response code")
	c.Stream = r.str("stream")
}
