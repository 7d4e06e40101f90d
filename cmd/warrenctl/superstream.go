package main

import (
	"flag"
	"net/http"
)

// declareSuperStream creates a super stream with rabbitmq_stream_management's
// PUT /api/stream/super-streams/{vhost}/{name} (RabbitMQ 3.11+ and Warren).
func declareSuperStream(fs *flag.FlagSet) func(*cli, []string) error {
	partitions := fs.Int("partitions", 0, "partition count: streams NAME-0 ... NAME-(N-1), binding keys 0 ... N-1")
	keys := fs.String("binding-keys", "", "comma-separated binding keys: a stream NAME-KEY for each")
	var args jsonFlag
	fs.Var(&args, "arguments", `the partitions' stream arguments, e.g. '{"max-age": "7D", "max-length-bytes": 1000000000}'`)
	return func(c *cli, a []string) error {
		body := map[string]any{"arguments": args.object()}
		if *partitions != 0 {
			body["partitions"] = *partitions
		}
		if *keys != "" {
			body["binding_keys"] = *keys
		}
		if _, _, err := c.request(http.MethodPut, "/api/stream/super-streams/"+esc(c.vhost)+"/"+esc(a[0]), body, nil); err != nil {
			return err
		}
		c.done("super stream %q declared %s", a[0], c.vhostPhrase())
		return nil
	}
}
