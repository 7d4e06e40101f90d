package raftlog

import "encoding/binary"

func appendUint64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func readUint64(b []byte) uint64             { return binary.BigEndian.Uint64(b) }
