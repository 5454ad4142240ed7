// Package byteio is a minimal, independently written stand-in for
// vimagination.zapto.org/byteio. It provides only what
// github.com/seata/seata-go v1.2.0 uses: BigEndianReader.ReadInt16, called
// once per frame to read the SEATA codec's 2-byte message type code.
package byteio

import (
	"encoding/binary"
	"io"
)

// BigEndianReader reads big-endian integers from Reader.
type BigEndianReader struct {
	io.Reader
}

// ReadInt16 reads a big-endian int16 and returns it with the number of bytes
// consumed.
func (r *BigEndianReader) ReadInt16() (int16, int, error) {
	var b [2]byte
	n, err := io.ReadFull(r.Reader, b[:])
	if err != nil {
		return 0, n, err
	}
	return int16(binary.BigEndian.Uint16(b[:])), n, nil
}
