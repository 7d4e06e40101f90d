package server

// Which consumer gets the next message: consumer priorities (x-priority on basic.consume) and
// single active consumer (x-single-active-consumer), as RabbitMQ 3.10 does them.
//
// A queue's consumers are kept by priority, highest first, in registration order within a
// priority. A message goes to a consumer of the highest priority that has credit, round-robin
// among those of that priority; lower priorities get messages only while every higher one is
// blocked. With single active consumer only the first registered consumer still attached gets
// messages (priorities are ignored, as in RabbitMQ 3.10, whose classic queues added them to single
// active consumer only later); when it goes, the next one in registration order takes over.

// insertConsumerLocked adds c in its place.
func (q *queue) insertConsumerLocked(c *consumer) {
	c.priority = 0
	if p, ok := intArg(c.args["x-priority"]); ok {
		c.priority = p
	}
	cs := q.mu.consumers
	i := len(cs)
	if !q.lim().single {
		for i > 0 && cs[i-1].priority < c.priority {
			i--
		}
	}
	cs = append(cs, nil)
	copy(cs[i+1:], cs[i:])
	cs[i] = c
	if q.mu.rr > i {
		q.mu.rr++
	}
	q.mu.consumers = cs
}

// pickConsumerLocked delivers e to the consumer whose turn it is and returns it, or returns nil
// if no consumer can take it now.
func (q *queue) pickConsumerLocked(e *qentry, run *dispatchRun) *consumer {
	cs := q.mu.consumers
	if q.lim().single {
		if c := cs[0]; c.ch.tryDeliver(c, e, run) {
			return c
		}
		return nil
	}
	for lo := 0; lo < len(cs); {
		hi := lo + 1
		for hi < len(cs) && cs[hi].priority == cs[lo].priority {
			hi++
		}
		size := hi - lo
		start := q.mu.rr
		if start < lo || start >= hi {
			start = lo
		}
		for k := 0; k < size; k++ {
			i := lo + (start-lo+k)%size
			if c := cs[i]; c.ch.tryDeliver(c, e, run) {
				q.mu.rr = lo + (i-lo+1)%size
				return c
			}
		}
		lo = hi
	}
	return nil
}
