package embedded

import "encoding/binary"

// seahash is the SeaHash function (the Rust crate's reference version).
// Corrosion sends it, over the expanded SQL, in the corro-query-hash header.
// No Go module with it is reachable here, and it is a dozen lines.
func seahash(buf []byte) uint64 {
	state := [4]uint64{0x16f11fe89b0d677c, 0xb480a793d8e6c86c, 0x6fe2e5aaf078ebc9, 0x14f994a4c5259381}
	for i := 0; i < len(buf); i += 8 {
		var word [8]byte
		copy(word[:], buf[i:min(i+8, len(buf))])
		a := seaDiffuse(state[0] ^ binary.LittleEndian.Uint64(word[:]))
		state[0], state[1], state[2], state[3] = state[1], state[2], state[3], a
	}
	return seaDiffuse(state[0] ^ state[1] ^ state[2] ^ state[3] ^ uint64(len(buf)))
}

func seaDiffuse(x uint64) uint64 {
	x *= 0x6eed0e9da4d94a4f
	a, b := x>>32, x>>60
	x ^= a >> b
	return x * 0x6eed0e9da4d94a4f
}
