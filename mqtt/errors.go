package mqtt

import (
	"errors"
	"fmt"
)

// ReasonCode is an MQTT 5 reason code (also used, for 3.1 and 3.1.1, as the CONNACK return code
// and SUBACK return codes, whose values are the same numbers below 0x80).
type ReasonCode byte

// The MQTT 5 reason codes (MQTT 5.0 section 2.4).
const (
	Success                     ReasonCode = 0x00 // also Normal disconnection, Granted QoS 0
	GrantedQoS1                 ReasonCode = 0x01
	GrantedQoS2                 ReasonCode = 0x02
	DisconnectWithWill          ReasonCode = 0x04
	NoMatchingSubscribers       ReasonCode = 0x10
	NoSubscriptionExisted       ReasonCode = 0x11
	ContinueAuthentication      ReasonCode = 0x18
	ReAuthenticate              ReasonCode = 0x19
	UnspecifiedError            ReasonCode = 0x80
	MalformedPacket             ReasonCode = 0x81
	ProtocolError               ReasonCode = 0x82
	ImplementationSpecificError ReasonCode = 0x83
	UnsupportedProtocolVersion  ReasonCode = 0x84
	ClientIdentifierNotValid    ReasonCode = 0x85
	BadUserNameOrPassword       ReasonCode = 0x86
	NotAuthorized               ReasonCode = 0x87
	ServerUnavailable           ReasonCode = 0x88
	ServerBusy                  ReasonCode = 0x89
	Banned                      ReasonCode = 0x8A
	ServerShuttingDown          ReasonCode = 0x8B
	BadAuthenticationMethod     ReasonCode = 0x8C
	KeepAliveTimeout            ReasonCode = 0x8D
	SessionTakenOver            ReasonCode = 0x8E
	TopicFilterInvalid          ReasonCode = 0x8F
	TopicNameInvalid            ReasonCode = 0x90
	PacketIdentifierInUse       ReasonCode = 0x91
	PacketIdentifierNotFound    ReasonCode = 0x92
	ReceiveMaximumExceeded      ReasonCode = 0x93
	TopicAliasInvalid           ReasonCode = 0x94
	PacketTooLarge              ReasonCode = 0x95
	MessageRateTooHigh          ReasonCode = 0x96
	QuotaExceeded               ReasonCode = 0x97
	AdministrativeAction        ReasonCode = 0x98
	PayloadFormatInvalid        ReasonCode = 0x99
	RetainNotSupported          ReasonCode = 0x9A
	QoSNotSupported             ReasonCode = 0x9B
	UseAnotherServer            ReasonCode = 0x9C
	ServerMoved                 ReasonCode = 0x9D
	SharedSubsNotSupported      ReasonCode = 0x9E
	ConnectionRateExceeded      ReasonCode = 0x9F
	MaximumConnectTime          ReasonCode = 0xA0
	SubIDsNotSupported          ReasonCode = 0xA1
	WildcardSubsNotSupported    ReasonCode = 0xA2
)

var reasonNames = map[ReasonCode]string{
	Success: "Success", GrantedQoS1: "Granted QoS 1", GrantedQoS2: "Granted QoS 2",
	DisconnectWithWill: "Disconnect with Will Message", NoMatchingSubscribers: "No matching subscribers",
	NoSubscriptionExisted: "No subscription existed", ContinueAuthentication: "Continue authentication",
	ReAuthenticate: "Re-authenticate", UnspecifiedError: "Unspecified error", MalformedPacket: "Malformed Packet",
	ProtocolError: "Protocol Error", ImplementationSpecificError: "Implementation specific error",
	UnsupportedProtocolVersion: "Unsupported Protocol Version", ClientIdentifierNotValid: "Client Identifier not valid",
	BadUserNameOrPassword: "Bad User Name or Password", NotAuthorized: "Not authorized",
	ServerUnavailable: "Server unavailable", ServerBusy: "Server busy", Banned: "Banned",
	ServerShuttingDown: "Server shutting down", BadAuthenticationMethod: "Bad authentication method",
	KeepAliveTimeout: "Keep Alive timeout", SessionTakenOver: "Session taken over",
	TopicFilterInvalid: "Topic Filter invalid", TopicNameInvalid: "Topic Name invalid",
	PacketIdentifierInUse: "Packet Identifier in use", PacketIdentifierNotFound: "Packet Identifier not found",
	ReceiveMaximumExceeded: "Receive Maximum exceeded", TopicAliasInvalid: "Topic Alias invalid",
	PacketTooLarge: "Packet too large", MessageRateTooHigh: "Message rate too high", QuotaExceeded: "Quota exceeded",
	AdministrativeAction: "Administrative action", PayloadFormatInvalid: "Payload format invalid",
	RetainNotSupported: "Retain not supported", QoSNotSupported: "QoS not supported",
	UseAnotherServer: "Use another server", ServerMoved: "Server moved",
	SharedSubsNotSupported: "Shared Subscriptions not supported", ConnectionRateExceeded: "Connection rate exceeded",
	MaximumConnectTime: "Maximum connect time", SubIDsNotSupported: "Subscription Identifiers not supported",
	WildcardSubsNotSupported: "Wildcard Subscriptions not supported",
}

func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	return fmt.Sprintf("reason 0x%02X", byte(c))
}

// ConnackReturnCode maps an MQTT 5 CONNACK reason code to the 3.1/3.1.1 CONNACK return code that
// says the same (3.1.1 section 3.2.2.3); reasons with no 3.1.1 equivalent map to 3 (server unavailable).
func ConnackReturnCode(c ReasonCode) byte {
	switch c {
	case Success:
		return 0
	case UnsupportedProtocolVersion:
		return 1
	case ClientIdentifierNotValid:
		return 2
	case BadUserNameOrPassword:
		return 4
	case NotAuthorized, Banned:
		return 5
	}
	return 3
}

// Error is a decoding or validation failure: the reason code the MQTT 5 specification says to send
// (in a CONNACK before a successful connect, a DISCONNECT after, or per subscription in a SUBACK or
// UNSUBACK) and whether the connection must be closed. When Close is false the packet was decoded
// and is returned with the error (only invalid topic filters in an MQTT 5 SUBSCRIBE or UNSUBSCRIBE:
// the receiver answers 0x8F for the filters that fail ValidTopicFilter).
type Error struct {
	Code  ReasonCode
	Close bool
	Type  PacketType // the packet being decoded, 0 if its type was not known
	Text  string
}

func (e *Error) Error() string {
	if e.Type != 0 {
		return fmt.Sprintf("mqtt %s: %s (0x%02X %s)", e.Type, e.Text, byte(e.Code), e.Code)
	}
	return fmt.Sprintf("mqtt: %s (0x%02X %s)", e.Text, byte(e.Code), e.Code)
}

// ErrNeedMore is returned by Decode and PacketLength when the bytes hold only the start of a packet
// (and what there is of it is valid): read more and call again with all of it.
var ErrNeedMore = errors.New("mqtt: incomplete packet, need more bytes")

func malformed(t PacketType, text string) *Error {
	return &Error{Code: MalformedPacket, Close: true, Type: t, Text: text}
}

func protocolErr(t PacketType, text string) *Error {
	return &Error{Code: ProtocolError, Close: true, Type: t, Text: text}
}
