// Package amqp is Warren's AMQP 0-9-1 wire protocol: frames, methods, field
// tables and content-header properties, with RabbitMQ's extensions.
//
// The package turns bytes into values and values into bytes and nothing
// else: it uses only the standard library, starts no goroutines, does no
// network I/O and writes no logs. Every decoder treats its input as hostile:
// it never panics, never allocates a length read from the wire before
// checking it against the bytes actually present (or, for frames, against the
// negotiated frame_max), and reports malformed input as an *Error carrying the
// AMQP reply code the server should close with.
//
// The method structs, reply-code constants and DecodeMethod switch live in
// methods_gen.go, generated from spec/amqp-rabbitmq-0.9.1.json by
// internal/specgen; run `go generate ./amqp` after changing the spec or the
// generator. A test fails if the committed file is stale.
package amqp

//go:generate go run ./internal/specgen
