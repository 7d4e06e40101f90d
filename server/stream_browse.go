package server

import (
	"errors"
	"fmt"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Browsing a queue's messages without consuming anything (management's
// GET /api/queues/{vhost}/{name}/messages). Streams browse from an offset or a timestamp; the
// request and the result are shaped so that other queue types can browse from their head later
// (no offset then).

// BrowseFrom says where Browse starts.
type BrowseFrom int

const (
	BrowseFirst     BrowseFrom = iota // the oldest message kept
	BrowseLast                        // a stream's last chunk (as x-stream-offset "last")
	BrowseOffset                      // BrowseRequest.Offset (below the oldest kept: the oldest)
	BrowseTimestamp                   // the first message that arrived at or after BrowseRequest.Timestamp
)

// BrowseRequest is what Browse reads.
type BrowseRequest struct {
	From      BrowseFrom
	Offset    uint64
	Timestamp int64 // Unix milliseconds
	Count     int   // at most this many messages
}

// BrowsedMessage is one message read by Browse.
type BrowsedMessage struct {
	Offset               uint64 // its position (a stream's offset)
	HasOffset            bool
	Timestamp            int64 // when it arrived (Unix milliseconds)
	Exchange, RoutingKey string
	Properties           amqp.Properties
	Body                 []byte
}

// ErrBrowseUnsupported is Browse's answer for a queue type that cannot be browsed yet.
var ErrBrowseUnsupported = errors.New("browsing without consuming is supported for stream queues only")

// Browse reads up to req.Count messages of a queue without consuming them or changing anything.
func (s *Server) Browse(vhost, queueName string, req BrowseRequest) ([]BrowsedMessage, error) {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return nil, err
	}
	q, err := v.queueNamed(queueName)
	if err != nil {
		return nil, v.errNoQueue(queueName)
	}
	sq, ok := q.queueImpl.(*streamQueue)
	if !ok {
		return nil, ErrBrowseUnsupported
	}
	return sq.browse(req)
}

// browse reads committed entries from where req says, with no stream lock held while it reads.
func (s *streamQueue) browse(req BrowseRequest) ([]BrowsedMessage, error) {
	out := []BrowsedMessage{}
	if req.Count <= 0 {
		return out, nil
	}
	s.mu.Lock()
	if s.mu.deleted {
		s.mu.Unlock()
		return nil, s.v.errNoQueue(s.name)
	}
	cursor := s.firstLocked()
	switch req.From {
	case BrowseLast:
		cursor = s.mu.next
		if s.mu.hasChunk && s.mu.lastChunk >= s.firstLocked() {
			cursor = s.mu.lastChunk
		}
	case BrowseOffset:
		cursor = max(cursor, req.Offset)
	}
	s.mu.Unlock()
	if req.From == BrowseTimestamp {
		off, err := s.offsetAt(req.Timestamp)
		if err != nil {
			return nil, fmt.Errorf("finding the offset of timestamp %d: %w", req.Timestamp, err)
		}
		cursor = off
	}
	seg, from, upto, ok := s.readable(cursor)
	if !ok {
		return nil, s.v.errNoQueue(s.name)
	}
	if from >= upto {
		return out, nil
	}
	start := storage.StreamEntryKey(s.id, seg, from)
	_, end := storage.StreamRange(s.id)
	err := s.v.srv.store.ScanRange(start, end, func(k, v []byte) error {
		_, _, off, err := storage.ParseStreamEntryKey(k)
		if err != nil {
			return err
		}
		if off >= upto || len(out) >= req.Count {
			return storage.ErrStop
		}
		_, _, rec, err := parseStreamEntry(v)
		if err != nil {
			return fmt.Errorf("entry %d: %w", off, err)
		}
		m, err := decodeMessage(rec)
		if err != nil {
			return fmt.Errorf("entry %d: %w", off, err)
		}
		props, err := amqp.DecodeProperties(m.props)
		if err != nil {
			return fmt.Errorf("entry %d: properties: %w", off, err)
		}
		out = append(out, BrowsedMessage{Offset: off, HasOffset: true, Timestamp: m.arrived, Exchange: m.exchange,
			RoutingKey: m.routingKey, Properties: props, Body: m.body})
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrStop) {
		return nil, err
	}
	return out, nil
}
