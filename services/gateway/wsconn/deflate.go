package wsconn

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"sync"
)

// deflateTail ends every compressed message before the sender strips it
// (RFC 7692, section 7.2.1): the empty stored block of a sync flush.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// Compressors and decompressors are large (a compressor holds hundreds of
// KiB), so they are pooled and held only for one message: no context is
// taken over between messages, in either direction.
var (
	compressors   sync.Pool // *compressor
	decompressors sync.Pool // io.ReadCloser that is a flate.Resetter
)

type compressor struct {
	w   *flate.Writer
	buf bytes.Buffer
}

func getCompressor() *compressor {
	if z, ok := compressors.Get().(*compressor); ok {
		return z
	}
	z := &compressor{}
	z.w, _ = flate.NewWriter(&z.buf, flate.BestSpeed) // the level is valid
	return z
}

// compress returns p compressed, without the tail; the bytes are valid
// until the compressor is used again.
func (z *compressor) compress(p []byte) []byte {
	z.buf.Reset()
	z.w.Reset(&z.buf)
	z.w.Write(p) // a bytes.Buffer does not fail
	z.w.Flush()
	return bytes.TrimSuffix(z.buf.Bytes(), deflateTail)
}

func putCompressor(z *compressor) {
	if z.buf.Cap() <= maxPooledFrame {
		compressors.Put(z)
	}
}

// inflate decompresses a message, refusing more than limit bytes.
func inflate(msg []byte, limit int64) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(msg), bytes.NewReader(deflateTail))
	r, _ := decompressors.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReader(src)
	} else if err := r.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	defer decompressors.Put(r)
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(r, limit+1))
	switch {
	case n > limit:
		return nil, ErrTooBig
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return nil, ProtocolError("compressed message does not inflate: " + err.Error())
	}
	return out.Bytes(), nil
}
