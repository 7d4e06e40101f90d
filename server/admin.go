package server

// Overview returns the broker-wide figures for the management API's /api/overview.
func (s *Server) Overview() map[string]any {
	s.mu.Lock()
	conns := len(s.mu.conns)
	s.mu.Unlock()
	s.vhostsMu.RLock()
	var queues, exchanges int
	for _, v := range s.vhosts {
		v.mu.RLock()
		queues += len(v.queues)
		exchanges += len(v.exchanges)
		v.mu.RUnlock()
	}
	s.vhostsMu.RUnlock()
	return map[string]any{
		"product_name":    "Warren",
		"product_version": Version,
		"object_totals": map[string]int{
			"connections": conns,
			"queues":      queues,
			"exchanges":   exchanges,
		},
	}
}
