package seal

import (
	"bytes"
	"crypto/cipher"
	"reflect"

	"golang.org/x/crypto/chacha20poly1305"
)

// newAEAD returns XChaCha20-Poly1305 under key. The AEAD keeps its own copy
// of the key; zeroAEAD clears it.
func newAEAD(key *[dekSize]byte) cipher.AEAD {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("seal: " + err.Error()) // unreachable: the key size is fixed
	}
	return aead
}

// zeroAEAD clears the key inside an AEAD from newAEAD, which must no longer
// be in use.
//
// x/crypto offers no way to erase the key copy its AEAD holds, and leaving
// it to the garbage collector leaves the key in freed memory. The AEAD is a
// pointer to a struct holding just the 32-byte key; canZeroAEAD checks that
// layout, key bytes included, once at start-up, and if a future x/crypto
// changes it, zeroAEAD does nothing rather than write blindly.
func zeroAEAD(a cipher.AEAD) {
	if a == nil || !canZeroAEAD {
		return
	}
	clear(aeadKey(a)[:])
}

var canZeroAEAD = checkAEADLayout()

func aeadKey(a cipher.AEAD) *[dekSize]byte {
	return (*[dekSize]byte)(reflect.ValueOf(a).UnsafePointer())
}

func checkAEADLayout() bool {
	var probe [dekSize]byte
	for i := range probe {
		probe[i] = byte(i + 1)
	}
	a := newAEAD(&probe)
	t := reflect.TypeOf(a)
	if t.Kind() != reflect.Pointer {
		return false
	}
	s := t.Elem()
	if s.Kind() != reflect.Struct || s.Size() != dekSize || s.NumField() != 1 ||
		s.Field(0).Type != reflect.TypeFor[[dekSize]byte]() || s.Field(0).Offset != 0 {
		return false
	}
	return bytes.Equal(aeadKey(a)[:], probe[:])
}
