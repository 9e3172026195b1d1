//! Byte ring buffers for the send and receive queues.
//!
//! [`RingBuffer`] is a fixed-capacity circular byte queue. The capacity is chosen at
//! creation and never changes, so a connection's memory is bounded by the capacities of
//! its two queues. The backing storage follows what the queue holds: none until the
//! first write (a connection that never carries data, a half-open one say, costs no
//! buffer memory), then [`MIN_STORAGE`] bytes, doubled as more data waits, up to the
//! capacity; an empty queue can give its storage back ([`BufferPool`]). So a
//! connection exchanging small requests and responses holds a few KiB while a bulk
//! transfer grows to its full window.
//!
//! Besides plain bulk [`enqueue`](RingBuffer::enqueue) and
//! [`dequeue`](RingBuffer::dequeue), the buffer offers what a TCP connection needs on its
//! hot path without extra copies:
//!
//! - **Send queue**: [`slices_at`](RingBuffer::slices_at) borrows up to two slices of
//!   queued bytes at an offset from the front without removing them, so a segment (new
//!   or retransmitted) is copied straight from the queue into the outgoing packet;
//!   [`consume`](RingBuffer::consume) drops bytes once they are acknowledged.
//! - **Receive queue**: [`write_at`](RingBuffer::write_at) places out-of-order bytes at an
//!   offset past the readable end (tracked by [`crate::assembler::Assembler`]), and
//!   [`commit`](RingBuffer::commit) makes them readable once the hole before them fills.
//! - **Zero-copy production and consumption**: [`unfilled_mut`](RingBuffer::unfilled_mut)
//!   / [`commit`](RingBuffer::commit) and [`readable`](RingBuffer::readable) /
//!   [`consume`](RingBuffer::consume) expose contiguous regions directly.
//!
//! No operation allocates except the lazy allocation and growth of the storage (at
//! most one reallocation per doubling, each copying what the queue holds).

#[path = "window.rs"]
pub mod window;

/// The smallest storage a buffer allocates (or all of its capacity, if smaller).
pub const MIN_STORAGE: usize = 4096;

/// A fixed-capacity circular byte queue.
///
/// Positions named "offset" are relative to the front (the oldest readable byte).
#[derive(Clone)]
pub struct RingBuffer {
    /// Backing storage: empty until first written, then between [`MIN_STORAGE`] and
    /// `capacity` bytes, large enough for every byte written past the front.
    storage: Box<[u8]>,
    /// Fixed capacity in bytes.
    capacity: usize,
    /// Index of the front byte in `storage`.
    head: usize,
    /// Number of readable bytes.
    len: usize,
}

impl core::fmt::Debug for RingBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingBuffer")
            .field("capacity", &self.capacity)
            .field("len", &self.len)
            .field("head", &self.head)
            .field("allocated", &!self.storage.is_empty())
            .finish()
    }
}

impl RingBuffer {
    /// An empty buffer that will hold at most `capacity` bytes. Allocates nothing yet.
    pub fn new(capacity: usize) -> Self {
        RingBuffer {
            storage: Box::default(),
            capacity,
            head: 0,
            len: 0,
        }
    }

    /// The fixed capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of readable bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are readable.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether no more bytes fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Free space in bytes (`capacity - len`): for a receive queue, the window.
    #[inline]
    pub fn free(&self) -> usize {
        self.capacity - self.len
    }

    /// Bytes of backing storage currently allocated (0 when empty and released, at
    /// most `capacity`).
    #[inline]
    pub fn allocated_bytes(&self) -> usize {
        self.storage.len()
    }

    /// Drop every readable byte (and anything placed past them). Keeps the storage.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Release the storage if the buffer is empty (it is re-allocated on the next write).
    ///
    /// Must not be called while bytes placed with [`write_at`](Self::write_at) are
    /// waiting to be committed: they would be lost.
    pub fn shrink_if_empty(&mut self) {
        if self.len == 0 {
            self.storage = Box::default();
            self.head = 0;
        }
    }

    /// Takes the storage out if the buffer is empty and allocated, for reuse by another
    /// buffer of the same capacity ([`BufferPool`]); the buffer re-acquires storage on
    /// its next write. Same caveat as [`shrink_if_empty`](Self::shrink_if_empty).
    pub fn take_storage_if_empty(&mut self) -> Option<Box<[u8]>> {
        if self.len != 0 || self.storage.is_empty() {
            return None;
        }
        self.head = 0;
        Some(core::mem::take(&mut self.storage))
    }

    /// Gives an unallocated buffer `storage` of at most its capacity (its old
    /// contents are irrelevant: bytes become readable only once written). Returns the
    /// storage if it does not fit or the buffer already has some.
    pub fn give_storage(&mut self, storage: Box<[u8]>) -> Result<(), Box<[u8]>> {
        if !self.storage.is_empty() || storage.is_empty() || storage.len() > self.capacity {
            return Err(storage);
        }
        self.storage = storage;
        self.head = 0;
        Ok(())
    }

    /// Storage index of `offset` bytes past the front; `offset <= storage.len()`.
    #[inline]
    fn index(&self, offset: usize) -> usize {
        let size = self.storage.len();
        debug_assert!(offset <= size);
        let i = self.head + offset;
        if i >= size {
            i - size
        } else {
            i
        }
    }

    /// Makes the storage hold at least `end` bytes past the front (`end <= capacity`),
    /// growing it by doubling: everything written so far, readable or placed past the
    /// readable end, keeps its offset.
    fn reserve(&mut self, end: usize) {
        let old = self.storage.len();
        if end <= old {
            return;
        }
        let size = end
            .max(MIN_STORAGE)
            .max(old.saturating_mul(2))
            .next_power_of_two()
            .min(self.capacity);
        let mut grown = vec![0u8; size].into_boxed_slice();
        if old > 0 {
            // Every byte lies within `old` bytes past the front, in logical order from
            // the head (wrapping).
            let first = old - self.head;
            grown[..first].copy_from_slice(&self.storage[self.head..]);
            grown[first..old].copy_from_slice(&self.storage[..self.head]);
        }
        self.storage = grown;
        self.head = 0;
    }

    /// Append as much of `data` as fits; returns the number of bytes appended.
    pub fn enqueue(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(0, data);
        self.len += n;
        n
    }

    /// Remove up to `out.len()` bytes from the front into `out`; returns the count.
    pub fn dequeue(&mut self, out: &mut [u8]) -> usize {
        let n = self.read_at(0, out);
        self.consume(n);
        n
    }

    /// Copy readable bytes starting `offset` bytes past the front into `out`, without
    /// removing them; returns the count (0 if `offset >= len`).
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        let (a, b) = self.slices_at(offset, out.len());
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        a.len() + b.len()
    }

    /// Borrow up to `max` readable bytes starting `offset` bytes past the front, as at
    /// most two slices (the second is non-empty only when the range wraps). Their total
    /// length is `min(max, len - offset)`, or 0 if `offset >= len`.
    ///
    /// This is how a sender copies a segment (new or retransmitted) into a packet.
    pub fn slices_at(&self, offset: usize, max: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        let n = max.min(self.len - offset);
        let start = self.index(offset);
        let first = n.min(self.storage.len() - start);
        (
            &self.storage[start..start + first],
            &self.storage[..n - first],
        )
    }

    /// All readable bytes as at most two slices, front first.
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        self.slices_at(0, self.len)
    }

    /// The contiguous readable bytes at the front (possibly fewer than `len` when the
    /// data wraps). Pair with [`consume`](Self::consume).
    pub fn readable(&self) -> &[u8] {
        self.slices_at(0, self.len).0
    }

    /// Drop up to `n` bytes from the front; returns the number dropped.
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        // The head moves even when the buffer empties: bytes placed past the readable
        // end with `write_at` must stay where they are.
        self.head = self.index(n);
        self.len -= n;
        n
    }

    /// Write `data` into free space starting `offset` bytes past the readable end,
    /// without making it readable; returns how many bytes were written (truncated at
    /// capacity; 0 if `offset >= free`).
    ///
    /// This places out-of-order segment data directly where it will be read from. Bytes
    /// become readable with [`commit`](Self::commit).
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let free = self.free();
        if offset >= free || data.is_empty() {
            return 0;
        }
        let n = data.len().min(free - offset);
        self.reserve(self.len + offset + n);
        let start = self.index(self.len + offset);
        let first = n.min(self.storage.len() - start);
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Make `n` bytes past the readable end readable (bytes previously placed with
    /// [`write_at`](Self::write_at) or [`unfilled_mut`](Self::unfilled_mut)); returns
    /// the count committed (at most `free`).
    pub fn commit(&mut self, n: usize) -> usize {
        let n = n.min(self.free());
        self.len += n;
        n
    }

    /// Up to `max` bytes of free space just past the readable end, as at most two
    /// slices (the second non-empty only when the space wraps), for writing in place
    /// from a source that fills several buffers at once (`preadv`). Their total length
    /// is `min(max, free)`; the storage grows to hold them. Pair with
    /// [`commit`](Self::commit), which makes the first slice readable before the second.
    pub fn unfilled_pair_mut(&mut self, max: usize) -> (&mut [u8], &mut [u8]) {
        let n = max.min(self.free());
        if n == 0 {
            return (&mut [], &mut []);
        }
        self.reserve(self.len + n);
        let start = self.index(self.len);
        let first = n.min(self.storage.len() - start);
        // The wrapped part runs from the storage's start towards the head, which is at
        // or before `start`.
        let (low, high) = self.storage.split_at_mut(start);
        (&mut high[..first], &mut low[..n - first])
    }

    /// The contiguous free region just past the readable end, for writing in place
    /// (e.g. copying a packet payload or reading from a socket). Pair with
    /// [`commit`](Self::commit). Empty when full; it may be shorter than the free space
    /// while the storage is smaller than the capacity (each call grows the storage when
    /// it is full).
    pub fn unfilled_mut(&mut self) -> &mut [u8] {
        if self.is_full() {
            return &mut [];
        }
        if self.len == self.storage.len() {
            self.reserve(self.len + 1);
        }
        let start = self.index(self.len);
        // Free space runs from the readable end to the head, wrapping at the end.
        let end = if start >= self.head {
            self.storage.len()
        } else {
            self.head
        };
        &mut self.storage[start..end]
    }
}

/// Storage released by idle buffers, kept for the next buffer that needs some, so
/// that a connection going quiet gives its memory back without a trip through the
/// allocator (and the page faults of fresh memory) each time it wakes.
///
/// Holds at most `max_bytes` of storage; beyond that, released storage is freed.
#[derive(Debug, Default)]
pub struct BufferPool {
    /// Free storages, most recently released last.
    free: Vec<Box<[u8]>>,
    held: usize,
    max_bytes: usize,
}

impl BufferPool {
    /// A pool keeping at most `max_bytes` of free storage.
    pub fn new(max_bytes: usize) -> Self {
        BufferPool {
            free: Vec::new(),
            held: 0,
            max_bytes,
        }
    }

    /// Bytes of free storage the pool holds.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Moves `buf`'s storage into the pool if `buf` is empty (or frees it if the pool
    /// is full).
    pub fn reclaim(&mut self, buf: &mut RingBuffer) {
        let Some(storage) = buf.take_storage_if_empty() else {
            return;
        };
        if self.held + storage.len() <= self.max_bytes {
            self.held += storage.len();
            self.free.push(storage);
        }
    }

    /// Gives an unallocated `buf` the most recently released storage, if the pool has
    /// one that fits its capacity (otherwise `buf` allocates on its first write).
    pub fn provide(&mut self, buf: &mut RingBuffer) {
        if buf.allocated_bytes() != 0 {
            return;
        }
        let Some(storage) = self.free.pop() else {
            return;
        };
        let len = storage.len();
        match buf.give_storage(storage) {
            Ok(()) => self.held -= len,
            Err(s) => self.free.push(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The storage grows by doubling as data waits, keeping every byte (readable and
    /// placed past the readable end) where it was, also across the wrap.
    #[test]
    fn storage_grows_with_the_data_and_keeps_it() {
        let mut b = RingBuffer::new(64 * 1024);
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.enqueue(&data[..3000]), 3000);
        assert_eq!(b.allocated_bytes(), MIN_STORAGE);
        // Move the head so that the next bytes wrap, then grow across the wrap.
        let mut out = vec![0u8; 2900];
        assert_eq!(b.dequeue(&mut out), 2900);
        assert_eq!(&out[..], &data[..2900]);
        assert_eq!(b.enqueue(&data[3000..6000]), 3000);
        assert_eq!(b.allocated_bytes(), MIN_STORAGE);
        // Out-of-order bytes far ahead force a larger storage.
        // (readable: data[2900..6000]; 10,000 past its end is data[16_000..].)
        assert_eq!(b.write_at(10_000, &data[16_000..16_100]), 100);
        assert!(b.allocated_bytes() >= 13_200 && b.allocated_bytes() <= 16 * 1024);
        assert_eq!(b.enqueue(&data[6000..16_000]), 10_000);
        assert_eq!(b.commit(100), 100);
        let mut rest = vec![0u8; b.len()];
        assert_eq!(b.dequeue(&mut rest), 13_200);
        assert!(rest == data[2900..16_100], "bytes moved or lost in growth");
        // Never beyond the capacity.
        let mut c = RingBuffer::new(5000);
        assert_eq!(c.enqueue(&data), 5000);
        assert_eq!(c.allocated_bytes(), 5000);
    }

    #[test]
    fn the_pool_takes_empty_storage_and_gives_it_back() {
        let mut pool = BufferPool::new(1 << 20);
        let mut a = RingBuffer::new(64 * 1024);
        a.enqueue(&[1; 100]);
        pool.reclaim(&mut a);
        assert_eq!(pool.held_bytes(), 0, "a buffer with data keeps its storage");
        a.consume(100);
        pool.reclaim(&mut a);
        assert_eq!((a.allocated_bytes(), pool.held_bytes()), (0, MIN_STORAGE));
        let mut small = RingBuffer::new(100);
        pool.provide(&mut small);
        assert_eq!(
            small.allocated_bytes(),
            0,
            "storage larger than the capacity"
        );
        let mut b = RingBuffer::new(64 * 1024);
        pool.provide(&mut b);
        assert_eq!((b.allocated_bytes(), pool.held_bytes()), (MIN_STORAGE, 0));
        let mut tiny = BufferPool::new(10);
        tiny.reclaim(&mut b);
        assert_eq!(
            (b.allocated_bytes(), tiny.held_bytes()),
            (0, 0),
            "over the bound: freed"
        );
    }

    #[test]
    fn lazy_allocation() {
        let mut b = RingBuffer::new(16);
        assert_eq!(b.allocated_bytes(), 0);
        assert_eq!(b.free(), 16);
        assert_eq!(b.enqueue(b""), 0);
        assert_eq!(b.allocated_bytes(), 0);
        b.enqueue(b"x");
        assert_eq!(b.allocated_bytes(), 16);
        let mut out = [0u8; 1];
        b.dequeue(&mut out);
        b.shrink_if_empty();
        assert_eq!(b.allocated_bytes(), 0);
    }

    #[test]
    fn enqueue_dequeue_wraps() {
        let mut b = RingBuffer::new(8);
        assert_eq!(b.enqueue(b"abcdef"), 6);
        let mut out = [0u8; 4];
        assert_eq!(b.dequeue(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // 2 bytes readable at index 4; now wrap.
        assert_eq!(b.enqueue(b"ghijklmn"), 6);
        assert!(b.is_full());
        let (x, y) = b.as_slices();
        assert_eq!(x, b"efgh");
        assert_eq!(y, b"ijkl");
        assert_eq!(b.readable(), b"efgh");
        let mut all = [0u8; 8];
        assert_eq!(b.dequeue(&mut all), 8);
        assert_eq!(&all, b"efghijkl");
        assert!(b.is_empty());
    }

    #[test]
    fn slices_at_offsets() {
        let mut b = RingBuffer::new(8);
        b.enqueue(b"012345");
        b.consume(4);
        b.enqueue(b"6789ab");
        // Readable: "456789ab", storage head at 4.
        assert_eq!(b.slices_at(0, 3), (&b"456"[..], &b""[..]));
        assert_eq!(b.slices_at(2, 4), (&b"67"[..], &b"89"[..]));
        assert_eq!(b.slices_at(5, 100), (&b"9ab"[..], &b""[..]));
        assert_eq!(b.slices_at(8, 1), (&b""[..], &b""[..]));
        let mut out = [0u8; 5];
        assert_eq!(b.read_at(3, &mut out), 5);
        assert_eq!(&out, b"789ab");
        assert_eq!(b.len(), 8);
    }

    #[test]
    fn write_at_then_commit() {
        let mut b = RingBuffer::new(10);
        b.enqueue(b"aa");
        // A hole of 3 bytes, then out-of-order data.
        assert_eq!(b.write_at(3, b"ddd"), 3);
        assert_eq!(b.len(), 2);
        assert_eq!(b.write_at(0, b"bcc"), 3);
        assert_eq!(b.commit(6), 6);
        let mut out = [0u8; 8];
        assert_eq!(b.dequeue(&mut out), 8);
        assert_eq!(&out, b"aabccddd");
        // Writes past capacity are truncated; at or past free space, refused.
        assert_eq!(b.write_at(8, b"xyz"), 2);
        assert_eq!(b.write_at(10, b"x"), 0);
        assert_eq!(b.commit(100), 10);
    }

    #[test]
    fn unfilled_mut_and_commit() {
        let mut b = RingBuffer::new(6);
        let w = b.unfilled_mut();
        assert_eq!(w.len(), 6);
        w[..4].copy_from_slice(b"wxyz");
        b.commit(4);
        b.consume(3);
        // Readable "z" at index 3; free region after it runs to the end of storage.
        assert_eq!(b.unfilled_mut().len(), 2);
        b.unfilled_mut().copy_from_slice(b"12");
        b.commit(2);
        assert_eq!(b.unfilled_mut().len(), 3);
        b.unfilled_mut()[..3].copy_from_slice(b"345");
        b.commit(3);
        assert!(b.unfilled_mut().is_empty());
        let mut out = [0u8; 6];
        b.dequeue(&mut out);
        assert_eq!(&out, b"z12345");
    }

    #[test]
    fn unfilled_pair_mut_wraps_and_commits_in_order() {
        let mut b = RingBuffer::new(8);
        b.enqueue(b"abcdef");
        b.consume(5);
        // Readable "f" at index 5; free space runs to the end and wraps to index 5.
        let (x, y) = b.unfilled_pair_mut(100);
        assert_eq!((x.len(), y.len()), (2, 5));
        x.copy_from_slice(b"12");
        y[..3].copy_from_slice(b"345");
        assert_eq!(b.commit(5), 5);
        assert_eq!(b.as_slices(), (&b"f12"[..], &b"345"[..]));
        // At most `max`, and nothing when full.
        let (x, y) = b.unfilled_pair_mut(1);
        assert_eq!((x.len(), y.len()), (1, 0));
        b.commit(2);
        let (x, y) = b.unfilled_pair_mut(4);
        assert!(x.is_empty() && y.is_empty());
    }

    #[test]
    fn unfilled_pair_mut_grows_the_storage_only_as_far_as_asked() {
        let mut b = RingBuffer::new(1 << 20);
        let (x, y) = b.unfilled_pair_mut(10);
        assert_eq!((x.len(), y.len()), (10, 0));
        assert!(b.allocated_bytes() < 1 << 16, "{}", b.allocated_bytes());
    }

    #[test]
    fn zero_capacity() {
        let mut b = RingBuffer::new(0);
        assert_eq!(b.enqueue(b"a"), 0);
        assert!(b.is_full() && b.is_empty());
        assert!(b.unfilled_mut().is_empty());
        assert_eq!(b.write_at(0, b"a"), 0);
        assert_eq!(b.commit(1), 0);
        assert_eq!(b.slices_at(0, 1), (&b""[..], &b""[..]));
    }
}
