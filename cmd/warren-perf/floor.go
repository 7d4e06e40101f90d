package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// The floor (--floor) is what end-to-end latency costs on this machine before any broker work:
// the same paced sender and timing receiver as a fixed-rate run, talking through a do-nothing
// forwarder in a child process (so that, as with a broker, two processes share the cores). The
// forwarder is a broker's read loop without the protocol: it reads what arrives and writes it to
// the receiver itself, with no other goroutine woken (as Warren's read loop writes the deliveries
// of a batch to an idle consumer connection: server/outbound.go, flushDirect). A message is
// --size bytes (at least 8: the send time), with no framing. Whatever latency it shows, no broker
// can go below it here.

// FloorResult is the report of --floor.
type FloorResult struct {
	Rate    float64  `json:"rate"`
	Size    int      `json:"size"`
	Pacer   string   `json:"pacer"`
	Seconds float64  `json:"seconds"`
	Sent    int64    `json:"sent"`
	Latency *Latency `json:"latency_us,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

// floorForwarderFlag makes the process the forwarder: it listens on 127.0.0.1:0, prints the
// address, accepts the sender's connection and then the receiver's, forwards until the sender
// closes, and exits.
const floorForwarderFlag = "--floor-forwarder"

func runFloorForwarder() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr())
	in, err := ln.Accept()
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := ln.Accept()
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func runFloor(cfg *config) (*FloorResult, error) {
	if cfg.rate <= 0 || cfg.size < 8 {
		return nil, errors.New("--floor needs --rate > 0 and --size >= 8")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	child := exec.Command(self, floorForwarderFlag)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := child.Start(); err != nil {
		return nil, fmt.Errorf("starting the forwarder: %w", err)
	}
	defer child.Process.Kill() // a no-op once it has exited
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading the forwarder's address: %w", err)
	}
	addr = strings.TrimSpace(addr)
	in, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer out.Close()

	r := &FloorResult{Rate: cfg.rate, Size: cfg.size, Pacer: cfg.pacer}
	var lat hist
	var rerr error
	var wg sync.WaitGroup
	wg.Go(func() { // the receiver: one goroutine reads and times every message
		msg := make([]byte, cfg.size)
		for {
			if _, err := io.ReadFull(out, msg); err != nil {
				if !errors.Is(err, io.EOF) {
					rerr = err
				}
				return
			}
			lat.record(uint64(max(0, time.Now().UnixNano()-int64(binary.BigEndian.Uint64(msg)))))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	pc := newPacer(ctx, cfg.pacer, time.Duration(float64(time.Second)/cfg.rate))
	defer pc.close()
	msg := make([]byte, cfg.size)
	start := time.Now()
	var werr error
	for ctx.Err() == nil {
		if !pc.ready() && !pc.wait() {
			break
		}
		pc.take()
		binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		if _, werr = in.Write(msg); werr != nil {
			break
		}
		r.Sent++
	}
	r.Seconds = time.Since(start).Seconds()
	in.Close() // the forwarder sees EOF, writes what it has, closes its side: the receiver ends
	wg.Wait()
	if err := child.Wait(); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("forwarder: %v", err))
	}
	for _, err := range []error{werr, rerr} {
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	if lat.n != uint64(r.Sent) {
		r.Errors = append(r.Errors, fmt.Sprintf("sent %d messages, received %d", r.Sent, lat.n))
	}
	r.Latency = lat.latency()
	return r, nil
}
