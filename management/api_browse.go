package management

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/server"
)

// maxBrowse is the most messages one browse returns.
const maxBrowse = 1000

// browseMessages is GET /api/queues/{vhost}/{name}/messages: a stream's messages from
// offset=N|first|last or timestamp=T (Unix milliseconds, or RFC 3339), count=K (default 20, at
// most 1000), encoding=auto|base64 and truncate=bytes as get-messages takes them; nothing is
// consumed. Each message has its offset and timestamp beside what get-messages shows. Permissions
// are get-messages' (the vhost, with a permission in it).
func browseMessages(c *call) error {
	qv := c.r.URL.Query()
	req := server.BrowseRequest{From: server.BrowseFirst, Count: 20}
	if qv.Has("offset") && qv.Has("timestamp") {
		return badRequest("give offset or timestamp, not both")
	}
	if qv.Has("offset") {
		switch o := qv.Get("offset"); o {
		case "first":
		case "last":
			req.From = server.BrowseLast
		default:
			n, err := strconv.ParseUint(o, 10, 64)
			if err != nil {
				return badRequest("offset must be first, last or a non-negative integer, not %q", o)
			}
			req.From, req.Offset = server.BrowseOffset, n
		}
	}
	if qv.Has("timestamp") {
		ts := qv.Get("timestamp")
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t, terr := time.Parse(time.RFC3339Nano, ts)
			if terr != nil {
				return badRequest("timestamp must be Unix milliseconds or an RFC 3339 time, not %q", ts)
			}
			ms = t.UnixMilli()
		}
		req.From, req.Timestamp = server.BrowseTimestamp, ms
	}
	if qv.Has("count") {
		n, err := strconv.Atoi(qv.Get("count"))
		if err != nil || n < 1 || n > maxBrowse {
			return badRequest("count must be an integer from 1 to %d, not %q", maxBrowse, qv.Get("count"))
		}
		req.Count = n
	}
	enc := "auto"
	if qv.Has("encoding") {
		enc = qv.Get("encoding")
		if enc != "auto" && enc != "base64" {
			return badRequest("Unsupported encoding. Please use auto or base64.")
		}
	}
	truncate := -1
	if qv.Has("truncate") {
		n, err := strconv.Atoi(qv.Get("truncate"))
		if err != nil || n < 0 {
			return badRequest("truncate must be a non-negative integer, not %q", qv.Get("truncate"))
		}
		truncate = n
	}
	msgs, err := c.a.b.Browse(c.vars["vhost"], c.vars["name"], req)
	if err != nil {
		var ae *amqp.Error
		switch {
		case errors.As(err, &ae) && ae.Code == amqp.NotFound:
			return &apiError{status: http.StatusNotFound, kind: "not_found", reason: ae.Text}
		case errors.Is(err, server.ErrBrowseUnsupported):
			return badRequest("%s", err.Error())
		}
		return err
	}
	out := make([]any, 0, len(msgs))
	for _, msg := range msgs {
		body := msg.Body
		if truncate >= 0 && len(body) > truncate {
			body = body[:truncate]
		}
		payload, penc := string(body), "string"
		if enc == "base64" || !utf8.Valid(body) {
			payload, penc = base64.StdEncoding.EncodeToString(body), "base64"
		}
		m := map[string]any{
			"timestamp": msg.Timestamp, "exchange": msg.Exchange, "routing_key": msg.RoutingKey,
			"properties": propertiesJSON(msg.Properties), "payload_bytes": len(msg.Body),
			"payload": payload, "payload_encoding": penc,
		}
		if msg.HasOffset {
			m["offset"] = msg.Offset
		}
		out = append(out, m)
	}
	return c.ok(out)
}
