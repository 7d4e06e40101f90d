// Package mqtt is the MQTT wire codec: control packets of MQTT 3.1 (protocol name "MQIsdp",
// level 3), 3.1.1 (level 4) and 5.0 (level 5) as Go values, bytes in and bytes out. Like amqp/, it
// has no sockets, no goroutines and no logging, and is fuzzed.
//
// Decode (or a connection's Decoder) reads the first packet of a byte slice and reports how many
// bytes it took, or ErrNeedMore for a partial packet. PacketLength checks the fixed header alone
// (remaining length at most four bytes, the configured maximum packet size) so a reader can refuse a
// packet before allocating for it. Every validation failure is an *Error carrying the MQTT 5 reason
// code to send and whether the connection must close. Append encodes.
//
// Validation done here: reserved flag bits, QoS 3, remaining-length and property-length bounds,
// UTF-8 strings (well-formed, so no surrogates or overlong forms, and no U+0000), non-zero packet
// identifiers, topic names without wildcards, topic filters' + and # placement, shared subscriptions,
// properties allowed per packet and not duplicated where they may appear once, property values
// (0/1 bytes, non-zero receive maximum, packet size, topic alias and subscription identifier),
// reason codes allowed per packet, and CONNECT's flags.
//
// Not done here (they need the session, so they belong to the front end): topic alias mapping and
// its maximum, receive maximum accounting, packet identifier reuse, the rule that the first packet
// is CONNECT and a second one is a protocol error, subscription identifiers sent by a client in
// PUBLISH, session expiry in DISCONNECT after a zero one in CONNECT, payload format checks of the
// payload, the "SHOULD NOT" control characters and non-characters in strings, and 3.1's 23-character
// client identifier limit.
package mqtt
