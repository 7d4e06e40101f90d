package fifo_test

import (
	"fmt"

	"github.com/warrenmq/warren/cluster/fifo"
)

// A host's loop over committed entries: decode, apply, act on the effects (only the leader
// delivers), keep checkpoints and truncate the log at the release cursor.
func Example() {
	s := fifo.New()
	var dec fifo.Decoder
	var cmd fifo.Command
	var log [][]byte // the Raft log: entry i+1 is log[i]
	propose := func(c fifo.Command) {
		log = append(log, c.Append(nil))
	}
	var checkpoint []byte
	var checkpointAt uint64
	applyAll := func() {
		for i := s.Index(); i < uint64(len(log)); i++ {
			if err := dec.Decode(log[i], &cmd); err != nil {
				fmt.Println(err) // a member that cannot read its log must stop, not skip
				return
			}
			reply, effects := s.Apply(i+1, &cmd)
			if reply.Status != fifo.StatusOK {
				fmt.Println("entry", i+1, reply.Status)
			}
			for _, e := range effects {
				switch e.Kind {
				case fifo.EffectDeliver:
					fmt.Printf("deliver %s to %s (id %d, redelivered %v)\n", e.Msg.Body, e.Consumer.Tag, e.Msg.ID, e.Msg.Redelivered())
				case fifo.EffectReleaseCursor:
					if checkpoint != nil && e.Index >= checkpointAt {
						fmt.Printf("snapshot at %d (%d bytes), log compacted up to it\n", checkpointAt, len(checkpoint))
						checkpoint = nil
					}
				}
			}
			if checkpoint == nil && i+1 == 3 {
				checkpoint, checkpointAt = s.MarshalCheckpoint(), i+1
			}
		}
	}
	c := fifo.ConsumerKey{Owner: 1, Tag: "ctag"}
	propose(fifo.Command{Kind: fifo.KindCheckout, Consumer: c, Credit: 10})
	propose(fifo.Command{Kind: fifo.KindEnqueue, Producer: 2, Seq: 1, TTL: -1, Size: 5, Body: []byte("hello")})
	propose(fifo.Command{Kind: fifo.KindEnqueue, Producer: 2, Seq: 1, TTL: -1, Size: 5, Body: []byte("hello")}) // re-proposed
	propose(fifo.Command{Kind: fifo.KindReturn, Consumer: c, IDs: []uint64{2}})
	propose(fifo.Command{Kind: fifo.KindSettle, Consumer: c, IDs: []uint64{2}})
	applyAll()
	fmt.Printf("%+v\n", s.Counts())
	// Output:
	// deliver hello to ctag (id 2, redelivered false)
	// entry 3 duplicate
	// deliver hello to ctag (id 2, redelivered true)
	// snapshot at 3 (63 bytes), log compacted up to it
	// {Ready:0 ReadyBytes:0 Unacked:0 UnackedBytes:0 DeadLetterPending:0 DeadLetterBytes:0 Consumers:1 Producers:1}
}
