#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file mapped read-only into memory. Tensor data is used in place: nothing is copied.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    /// `populate`: map every page at once (for files whose whole contents are about to be read).
    public init(path: String, populate: Bool = false) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FormatError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError.io(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FormatError.io(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        // MAP_POPULATE maps every page now: for a file in the page cache that is far cheaper than one
        // page fault per 4 KiB during the first forward pass.
        #if os(Linux)
        let flags = populate ? MAP_PRIVATE | MAP_POPULATE : MAP_PRIVATE
        #else
        let flags = MAP_PRIVATE
        #endif
        let p = mmap(nil, size, PROT_READ, flags, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw FormatError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    public var count: Int { bytes.count }

    deinit {
        if let base { munmap(base, bytes.count) }
    }
}
