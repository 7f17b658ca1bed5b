// Package tensorio reads and writes the tensors this project exchanges with the
// outside world: .npy arrays (hash weights, codes, selections, traces),
// safetensors files, the PyTorch zip files in which HATA's authors released
// their trained hash weights, and directories of per-layer attention traces.
//
// Every reader is written for untrusted input: it checks the sizes a header
// claims against the bytes actually present before it allocates for them,
// bounds every length, depth and count it parses, never panics, and returns
// errors that name the file and what is wrong with it (the shape against the
// data length, the byte offset where truncated data end, the unsupported
// dtype). Every writer is atomic: it writes a temporary file in the target's
// directory, fsyncs it and renames it into place, so a crash or an error
// leaves either the old file or the complete new one, never a partial one.
//
// Why hand-written parsers. The .npy format is a 10- or 12-byte preamble, a
// Python dict literal and raw little-endian data, so a reader is small; the
// obvious library, codeberg.org/sbinet/npyio (v0.14.0), does read float16, but
// it allocates the header buffer from the length the file claims (up to 4 GiB)
// before checking it against the file, reads data without first comparing the
// claimed size with the file size, returns float16 as its own type, and would
// bring gopickle, embedmd and a newer golang.org/x/text into the module graph.
// The PyTorch loader likewise interprets only the pickle opcodes torch.save
// emits, with bounded stack, memo and string sizes, and never executes a
// global: it recognises torch's tensor-rebuild call and storage types by name.
// safetensors is an 8-byte length, a JSON header and raw data, read the same
// bounded way.
package tensorio
