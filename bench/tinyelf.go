package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// tinyCode is the whole of the tiny child, x86-64 machine code with no libc and no
// runtime: write(1, "x", 1); read(0, buf, 1); exit_group(0). It tells its parent (or the
// harness on the other end of fd 1) that it runs, blocks until fd 0 reaches end of file,
// and exits. Exec'ing it costs a few tens of microseconds and a page or two of memory, so
// ten thousand of them make an orphan storm that measures the init, not the orphans, and
// a lock waiter's child start can be timed to the microsecond.
var tinyCode = []byte{
	0x6a, 0x78, // push 'x'
	0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
	0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
	0x48, 0x89, 0xe6, // mov rsi, rsp
	0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1
	0x0f, 0x05, // syscall
	0x31, 0xc0, // xor eax, eax (read)
	0x31, 0xff, // xor edi, edi
	0x48, 0x89, 0xe6, // mov rsi, rsp
	0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1
	0x0f, 0x05, // syscall
	0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231 (exit_group)
	0x31, 0xff, // xor edi, edi
	0x0f, 0x05, // syscall
}

// tinyELF returns a static ELF64 executable around tinyCode: one header, one loadable
// segment holding the whole file.
func tinyELF() []byte {
	const (
		base      = 0x400000
		ehdrSize  = 64
		phdrSize  = 56
		codeStart = ehdrSize + phdrSize
	)
	size := uint64(codeStart + len(tinyCode))
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	w := func(v any) { _ = binary.Write(&b, le, v) } // a bytes.Buffer never fails
	w(uint16(2))                                     // ET_EXEC
	w(uint16(0x3e))                                  // EM_X86_64
	w(uint32(1))                                     // EV_CURRENT
	w(uint64(base + codeStart))                      // e_entry
	w(uint64(ehdrSize))                              // e_phoff
	w(uint64(0))                                     // e_shoff
	w(uint32(0))                                     // e_flags
	w(uint16(ehdrSize))
	w(uint16(phdrSize))
	w(uint16(1)) // e_phnum
	w(uint16(0)) // e_shentsize
	w(uint16(0)) // e_shnum
	w(uint16(0)) // e_shstrndx
	w(uint32(1)) // PT_LOAD
	w(uint32(5)) // PF_R|PF_X
	w(uint64(0)) // p_offset
	w(uint64(base))
	w(uint64(base))
	w(size) // p_filesz
	w(size) // p_memsz
	w(uint64(0x1000))
	b.Write(tinyCode)
	return b.Bytes()
}

// writeTiny puts the tiny child in dir and returns its path.
func writeTiny(dir string) (string, error) {
	if runtime.GOARCH != "amd64" {
		return "", fmt.Errorf("tiny child: written in amd64 machine code, this is %s: the orphan storm and lock figures need an amd64 machine", runtime.GOARCH)
	}
	path := filepath.Join(dir, "tiny")
	if err := os.WriteFile(path, tinyELF(), 0o755); err != nil {
		return "", fmt.Errorf("tiny child: %w", err)
	}
	return path, nil
}
