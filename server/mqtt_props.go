package server

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/mqtt"
)

// MQTT 5 message properties and AMQP properties, both ways:
//
//	MQTT 5                    AMQP 0-9-1
//	user properties           headers (string values; a repeated name keeps its last value)
//	content type              content_type
//	response topic            reply_to ('/' -> '.', so an AMQP responder publishing to the
//	                          MQTT exchange with that routing key reaches the MQTT requester)
//	correlation data          correlation_id (up to 255 bytes)
//	message expiry interval   expiration (seconds -> milliseconds; back: what remains of it)
//
// AMQP headers other than x-mqtt-* become user properties with their values as text.

const mqttMessageProps = 1<<mqtt.PropContentType | 1<<mqtt.PropResponseTopic | 1<<mqtt.PropCorrelationData |
	1<<mqtt.PropMessageExpiry

// mqttHasAMQPProps reports whether an MQTT 5 PUBLISH carries properties that map to AMQP's.
func mqttHasAMQPProps(p *mqtt.Properties) bool {
	return p.Present&mqttMessageProps != 0 || len(p.UserProperties) > 0
}

// mqttToAMQPProps adds the MQTT 5 properties of a PUBLISH to props.
func mqttToAMQPProps(p *mqtt.Properties, props *amqp.Properties) {
	if p.Has(mqtt.PropContentType) {
		props.ContentType = p.ContentType
	}
	if p.Has(mqtt.PropResponseTopic) {
		props.ReplyTo = mqttToAMQP(p.ResponseTopic)
	}
	if p.Has(mqtt.PropCorrelationData) && len(p.CorrelationData) <= 255 {
		props.CorrelationID = string(p.CorrelationData)
	}
	if p.Has(mqtt.PropMessageExpiry) {
		props.Expiration = strconv.FormatUint(uint64(p.MessageExpiry)*1000, 10)
	}
	for _, up := range p.UserProperties {
		props.Headers[up.Key] = up.Value
	}
}

// amqpToMQTTProps sets the MQTT 5 properties of a delivery of m.
func amqpToMQTTProps(m *message, out *mqtt.Properties) {
	if m.hasTTL {
		left := (m.arrived + m.ttl - nowMillis() + 999) / 1000
		out.MessageExpiry = uint32(max(left, 0))
		out.Set(mqtt.PropMessageExpiry)
	}
	if len(m.props) == 0 || isMQTTFixedProps(m.props) {
		return
	}
	props, err := amqp.DecodeProperties(m.props)
	if err != nil {
		return
	}
	if props.ContentType != "" && utf8.ValidString(props.ContentType) {
		out.ContentType = props.ContentType
		out.Set(mqtt.PropContentType)
	}
	if props.ReplyTo != "" && utf8.ValidString(props.ReplyTo) {
		out.ResponseTopic = amqpToMQTT(props.ReplyTo)
		if mqtt.ValidTopicName(out.ResponseTopic) == nil {
			out.Set(mqtt.PropResponseTopic)
		}
	}
	if props.CorrelationID != "" {
		out.CorrelationData = []byte(props.CorrelationID)
		out.Set(mqtt.PropCorrelationData)
	}
	for k, v := range props.Headers {
		if strings.HasPrefix(k, "x-mqtt-") || !utf8.ValidString(k) {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case []byte:
			s = string(v)
		case nil, amqp.Table, []any:
			continue
		default:
			s = fmt.Sprint(v)
		}
		if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.ContainsRune(k, 0) {
			out.UserProperties = append(out.UserProperties, mqtt.UserProperty{Key: k, Value: s})
		}
	}
}

// isMQTTFixedProps reports whether raw are the shared properties of a publish without MQTT 5
// properties (nothing to map back).
func isMQTTFixedProps(raw []byte) bool {
	for i := range mqttProps {
		for j := range mqttProps[i] {
			if &mqttProps[i][j].raw[0] == &raw[0] {
				return true
			}
		}
	}
	return false
}
