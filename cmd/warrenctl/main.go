// Command warrenctl administers Warren (or RabbitMQ) over the management HTTP API, in the spirit of
// rabbitmqadmin: it uses RabbitMQ's /api paths and JSON, so it works against either broker.
//
//	warrenctl [global flags] COMMAND [ARGS] [flags]
//
// Commands:
//
//	list queues|exchanges|bindings|connections|channels|consumers|vhosts|users|policies|permissions|nodes
//	declare queue NAME [--durable=true] [--auto-delete] [--arguments JSON]
//	declare exchange NAME [--type direct] [--durable=true] [--auto-delete] [--internal] [--arguments JSON]
//	declare binding SOURCE DESTINATION [--destination-type queue|exchange] [--routing-key KEY] [--arguments JSON]
//	declare vhost NAME [--description TEXT] [--tags a,b]
//	declare user NAME --new-password PASSWORD [--tags administrator,...]
//	declare permission USER [--configure RE] [--write RE] [--read RE]   (in --vhost)
//	declare super-stream NAME --partitions N | --binding-keys a,b [--arguments JSON]
//	        (a super stream: partition streams NAME-0... or NAME-KEY behind the exchange NAME)
//	delete queue NAME [--if-unused] [--if-empty]
//	delete exchange NAME [--if-unused]
//	delete binding SOURCE DESTINATION [--destination-type queue|exchange] [--routing-key KEY]
//	delete vhost NAME
//	delete user NAME
//	purge queue NAME
//	publish [--exchange NAME] [--routing-key KEY] [--properties JSON] [--header K=V]... [--persistent] [PAYLOAD]
//	        (no PAYLOAD: read it from standard input)
//	get QUEUE [--count 1] [--ackmode ack_requeue_true|ack_requeue_false|reject_requeue_true|reject_requeue_false]
//	export FILE|-      (definitions; of --vhost only when --vhost is given)
//	import FILE|-
//	status             (overview: product, version, object counts, message counts and rates)
//	health             (alarms check; exit 1 when an alarm is in effect)
//	close connection NAME [--reason TEXT]
//
// Global flags (before or after the command):
//
//	--url URL         management API base URL (env WARREN_URL; default http://127.0.0.1:15672)
//	--user NAME       (env WARREN_USER; default guest)
//	--password PASS   (env WARREN_PASSWORD; default guest)
//	--vhost NAME      virtual host (default "/"). The list commands and export cover every vhost
//	                  unless --vhost is given.
//	--format table|json  table: aligned columns; json: the API's objects as it returns them
//	--columns a,b.c   the table's columns for list (dotted paths into the objects)
//	--timeout 60s     for each HTTP request
//	--cacert FILE     https: the CA certificates (PEM) to trust (env WARREN_CACERT)
//	--insecure        https: do not verify the server's certificate
//
// Exit codes, for scripts:
//
//	0  success
//	1  the API or server refused or failed (RabbitMQ's reason is printed), the broker could not be
//	   reached, or health found an alarm
//	2  usage error (unknown command, bad flag or argument)
//	3  not found (HTTP 404: no such queue, exchange, vhost, user, connection, ...)
//	4  authentication or authorization refused (HTTP 401 or 403)
package main

import (
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
	exitAuth     = 4
)

// run executes one command line and returns the process's exit code. Results go to stdout,
// errors to stderr; stdin is read only by publish and import.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return newCLI(stdin, stdout, stderr).run(args)
}
