package server

import "testing"

// unconfirmed is what /api/channels shows as messages_unconfirmed and /metrics sums into
// rabbitmq_channel_messages_unconfirmed: the seqs handed to the ledger and not yet answered.
func TestConfirmLedgerUnconfirmed(t *testing.T) {
	var l confirmLedger
	if n := l.unconfirmed(); n != 0 {
		t.Fatalf("new ledger: %d", n)
	}
	l.handed.Store(5)
	if n := l.unconfirmed(); n != 5 {
		t.Errorf("5 handed, none sent: %d", n)
	}
	l.mu.sent = 3
	if n := l.unconfirmed(); n != 2 {
		t.Errorf("5 handed, 3 sent: %d", n)
	}
	l.close()
	if n := l.unconfirmed(); n != 0 {
		t.Errorf("closed: %d", n)
	}
}
