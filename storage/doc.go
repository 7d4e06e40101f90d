// Package storage is Warren's durable state: the only package that will import Pebble. It stores
// opaque bytes under ordered keys and knows nothing of AMQP or sockets.
//
// # Contract
//
//   - Apply writes a Batch atomically: after a crash either all of it or none of it is visible.
//   - Apply with sync=true returns only once the batch is durable (fsynced); a nil error from a
//     synced Apply is what allows the broker to confirm a message.
//   - Scan visits keys in byte order; keys.go builds keys so that a vhost's exchanges, queues,
//     bindings and a queue's messages (by sequence) are each one contiguous, ordered range, and a
//     queue's messages can be dropped with one DeleteRange.
//   - Records carry a version byte first (RecordVersion) so their encoding can change.
//
// Today the broker records durable exchanges, queues and bindings through this interface and
// rebuilds them in New. MemStore implements it in memory (state survives a broker restart within
// one process, as tests use it); the Pebble store and persistent messages come next.
package storage
