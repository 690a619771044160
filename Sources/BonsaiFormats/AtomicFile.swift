#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file the safe way: into `<path>.tmp-<pid>` beside it, fsync, then rename over `path`.
/// A crash or Ctrl-C mid-write leaves the old file (or none), never a half-written one.
public final class AtomicFileWriter {
    public let path: String
    let tempPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    public private(set) var bytesWritten = 0
    private var finished = false

    public init(path: String) throws {
        self.path = path
        tempPath = "\(path).tmp-\(getpid())"
        fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FormatError.io(path: path, reason: "cannot create: \(String(cString: strerror(errno)))") }
        buffer.reserveCapacity(1 << 20)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > 1 << 20 { try flush() }
        if bytes.count >= 1 << 20 {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
        bytesWritten += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    public func write<T: FixedWidthInteger>(_ v: T) throws {
        try withUnsafeBytes(of: v.littleEndian) { try write($0) }
    }

    public func writeZeros(_ n: Int) throws { if n > 0 { try write([UInt8](repeating: 0, count: n)) } }

    private func flush() throws {
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.io(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Flushes, syncs and renames into place.
    public func commit() throws {
        try flush()
        guard fsync(fd) == 0, close(fd) == 0 else {
            throw FormatError.io(path: path, reason: "cannot finish writing: \(String(cString: strerror(errno)))")
        }
        fd = -1
        guard rename(tempPath, path) == 0 else {
            throw FormatError.io(path: path, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
        }
        finished = true
    }

    deinit {
        if !finished {
            if fd >= 0 { close(fd) }
            unlink(tempPath)
        }
    }
}
