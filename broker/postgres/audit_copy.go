package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/audit"
)

// The PostgreSQL binary COPY format: a header, tuples of length-prefixed
// fields, and a trailer.
var binCopySignature = []byte("PGCOPY\n\xff\r\n\x00")

func binCopyHeader(b []byte) []byte {
	b = append(b, binCopySignature...)
	return binary.BigEndian.AppendUint64(b, 0) // flags, header extension length
}

func binCopyTuple(b []byte, fields int) []byte {
	return binary.BigEndian.AppendUint16(b, uint16(fields))
}

func binCopyField(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func binCopyInt64(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func binCopyTime(b []byte, unixMicros int64) []byte {
	return binCopyInt64(b, unixMicros-auditPGEpochMicros)
}

func binCopyTrailer(b []byte) []byte { return binary.BigEndian.AppendUint16(b, 0xffff) }

// binCopyKeys appends e's keys column as a binary COPY field.
func binCopyKeys(b []byte, e *audit.Entry) []byte {
	fields := e.Keys()
	n := len(fields) - 1
	for _, f := range fields {
		n += len(f)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for i, f := range fields {
		if i > 0 {
			b = append(b, audit.KeySeparator)
		}
		b = append(b, f...)
	}
	return b
}

// auditCopyOutSnapshot runs a COPY TO on a pooled connection, in a
// transaction that imports the exported snapshot.
func (rp *AuditReports) auditCopyOutSnapshot(ctx context.Context, snapshotID, sql string, row func([][]byte) error) error {
	conn, err := rp.db.Pool.Acquire(ctx)
	if err != nil {
		return Translate(err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	// The scan is one cheap pass; compiling it (JIT, which its cost
	// estimate would trigger on a large log) only adds time. Both settings
	// go in one round trip (without arguments, Exec sends a simple query).
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshotID+"'; SET LOCAL jit = off"); err != nil {
		return Translate(err)
	}
	return auditCopyOut(ctx, conn.Conn().PgConn(), sql, row)
}

// auditCopyOut runs a binary COPY TO STDOUT and calls row with the fields of
// each tuple (valid only during the call).
func auditCopyOut(ctx context.Context, pc *pgconn.PgConn, sql string, row func([][]byte) error) error {
	p := &auditCopyParser{row: row}
	if _, err := pc.CopyTo(ctx, p, sql); err != nil {
		if p.err != nil {
			return p.err
		}
		return Translate(err)
	}
	if p.err != nil {
		return p.err
	}
	if !p.trailer {
		return errors.New("audit verify: COPY stream ended without its trailer")
	}
	return nil
}

// auditCopyParser parses a binary COPY stream written to it. PostgreSQL sends a
// tuple per message, so tuples are usually parsed in place; a tuple split
// across writes is assembled in buf.
type auditCopyParser struct {
	row     func([][]byte) error
	buf     []byte
	header  bool
	trailer bool
	fields  [][]byte
	err     error
}

var errAuditCopyFormat = errors.New("audit verify: malformed COPY stream")

func (p *auditCopyParser) Write(b []byte) (int, error) {
	data := b
	if len(p.buf) > 0 {
		p.buf = append(p.buf, b...)
		data = p.buf
	}
	off, err := p.parse(data)
	if err != nil {
		p.err = err
		return 0, err
	}
	rest := data[off:]
	if len(p.buf) > 0 {
		n := copy(p.buf, rest)
		p.buf = p.buf[:n]
	} else {
		p.buf = append(p.buf[:0], rest...)
	}
	return len(b), nil
}

func (p *auditCopyParser) parse(data []byte) (int, error) {
	off := 0
	if !p.header {
		if len(data) < len(binCopySignature)+8 {
			return 0, nil
		}
		if !bytes.Equal(data[:len(binCopySignature)], binCopySignature) {
			return 0, errAuditCopyFormat
		}
		ext := int(binary.BigEndian.Uint32(data[len(binCopySignature)+4:]))
		if len(data) < len(binCopySignature)+8+ext {
			return 0, nil
		}
		off = len(binCopySignature) + 8 + ext
		p.header = true
	}
	for off+2 <= len(data) {
		n := int16(binary.BigEndian.Uint16(data[off:]))
		if n == -1 {
			p.trailer = true
			return off + 2, nil
		}
		if int(n) != nAuditCols || p.trailer {
			return 0, errAuditCopyFormat
		}
		if cap(p.fields) < int(n) {
			p.fields = make([][]byte, n)
		}
		f := p.fields[:n]
		pos := off + 2
		complete := true
		for i := range f {
			if pos+4 > len(data) {
				complete = false
				break
			}
			l := int32(binary.BigEndian.Uint32(data[pos:]))
			pos += 4
			if l < 0 {
				f[i] = nil
				continue
			}
			if pos+int(l) > len(data) {
				complete = false
				break
			}
			f[i] = data[pos : pos+int(l)]
			pos += int(l)
		}
		if !complete {
			break
		}
		if err := p.row(f); err != nil {
			return 0, err
		}
		off = pos
	}
	return off, nil
}
