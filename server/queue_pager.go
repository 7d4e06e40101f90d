package server

import "sync"

// pager is the goroutine that reads paged-out messages back into their queues' windows, so that
// neither a queue lock nor a connection's read loop waits on the store for it. Queues ask for a
// page-in with enqueue (under their lock: pager.mu is a leaf).
type pager struct {
	wake chan struct{} // 1-buffered
	stop chan struct{}
	done chan struct{}

	mu struct {
		sync.Mutex
		queues []*classicQueue
	}
}

func newPager() *pager {
	return &pager{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (p *pager) enqueue(q *classicQueue) {
	p.mu.Lock()
	p.mu.queues = append(p.mu.queues, q)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pager) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		for {
			p.mu.Lock()
			if len(p.mu.queues) == 0 {
				p.mu.Unlock()
				break
			}
			q := p.mu.queues[0]
			p.mu.queues[0] = nil
			p.mu.queues = p.mu.queues[1:]
			p.mu.Unlock()

			q.mu.Lock()
			q.mu.queuedIn = false
			q.unlock()
			q.pageIn()
			select {
			case <-p.stop:
				return
			default:
			}
		}
	}
}

// shutdown stops the pager and waits for it.
func (p *pager) shutdown() {
	close(p.stop)
	<-p.done
}
