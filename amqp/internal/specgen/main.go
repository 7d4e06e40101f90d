// Command specgen generates amqp/methods_gen.go from the RabbitMQ AMQP 0-9-1
// JSON spec. `go generate ./amqp` runs it from the amqp directory, so the
// default paths are relative to that directory.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/warrenmq/warren/amqp/internal/codegen"
)

func main() {
	specPath := flag.String("spec", "spec/amqp-rabbitmq-0.9.1.json", "input JSON spec")
	outPath := flag.String("out", "methods_gen.go", "output Go file (\"-\" for stdout)")
	flag.Parse()
	if err := run(*specPath, *outPath); err != nil {
		fmt.Fprintln(os.Stderr, "specgen:", err)
		os.Exit(1)
	}
}

func run(specPath, outPath string) error {
	spec, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	src, err := codegen.Generate(spec)
	if err != nil {
		return err
	}
	if outPath == "-" {
		_, err = os.Stdout.Write(src)
		return err
	}
	if old, err := os.ReadFile(outPath); err == nil && bytes.Equal(old, src) {
		return nil // unchanged: keep the file's timestamp
	}
	if err := os.WriteFile(outPath, src, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", outPath, err)
	}
	return nil
}
