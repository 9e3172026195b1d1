//! [`InlineVec`]: a vector of at most `N` items kept inline, in a fixed array and a
//! count. For the stack's small bounded lists (SACK blocks in an option and in the
//! receiver's report, out-of-order ranges): no allocation, a size fixed by the type,
//! and `Copy` when the items are, so a parsed header stays a plain value.

use core::fmt;
use core::ops::{Deref, DerefMut, Range};

/// At most `N` items of `T` in a fixed array; only the first `len` are meaningful.
///
/// It dereferences to the slice of the items present. Adding beyond `N` is refused
/// and changes nothing. Equality compares the items present only. `N` is at most 255.
#[derive(Clone, Copy)]
pub struct InlineVec<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: u8,
}

impl<T: Copy + Default, const N: usize> InlineVec<T, N> {
    /// Empty.
    pub fn new() -> Self {
        const {
            assert!(
                N <= u8::MAX as usize,
                "an InlineVec holds at most 255 items"
            )
        };
        InlineVec {
            items: [T::default(); N],
            len: 0,
        }
    }

    /// The items present.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        &self.items[..usize::from(self.len)]
    }

    /// The items present, to change in place.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items[..usize::from(self.len)]
    }

    /// Whether it holds `N` items.
    #[inline]
    pub fn is_full(&self) -> bool {
        usize::from(self.len) == N
    }

    /// Appends `item`, or gives it back when full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        self.insert(usize::from(self.len), item)
    }

    /// Inserts `item` at `index`, moving the items from there up by one, or gives it
    /// back when full.
    ///
    /// # Panics
    ///
    /// If `index` is beyond the items present.
    pub fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
        let len = usize::from(self.len);
        assert!(index <= len, "insert at {index} beyond {len} items");
        if len == N {
            return Err(item);
        }
        self.items.copy_within(index..len, index + 1);
        self.items[index] = item;
        self.len += 1;
        Ok(())
    }

    /// Removes the items in `range`, moving those after it down.
    ///
    /// # Panics
    ///
    /// If `range` is not within the items present.
    pub fn remove_range(&mut self, range: Range<usize>) {
        let len = usize::from(self.len);
        assert!(
            range.start <= range.end && range.end <= len,
            "remove {range:?} of {len} items"
        );
        self.items.copy_within(range.end..len, range.start);
        // `range.len() <= len <= 255`.
        self.len -= range.len() as u8;
    }

    /// Keeps the items for which `keep` returns true (it may change them), in order.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut T) -> bool) {
        let mut n = 0;
        for i in 0..usize::from(self.len) {
            let mut item = self.items[i];
            if keep(&mut item) {
                self.items[n] = item;
                n += 1;
            }
        }
        // `n <= len`.
        self.len = n as u8;
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<T: Copy + Default, const N: usize> Default for InlineVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default, const N: usize> Deref for InlineVec<T, N> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy + Default, const N: usize> DerefMut for InlineVec<T, N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for InlineVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for InlineVec<T, N> {}

impl<T: Copy + Default + fmt::Debug, const N: usize> fmt::Debug for InlineVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_insert_stop_at_capacity_and_keep_order() {
        let mut v = InlineVec::<u32, 3>::new();
        assert!(v.is_empty());
        assert_eq!(v.push(1), Ok(()));
        assert_eq!(v.push(3), Ok(()));
        assert_eq!(v.insert(1, 2), Ok(()));
        assert_eq!(v.as_slice(), &[1, 2, 3]);
        assert!(v.is_full());
        assert_eq!(v.push(4), Err(4));
        assert_eq!(v.insert(0, 0), Err(0));
        assert_eq!(v.as_slice(), &[1, 2, 3]);
    }

    #[test]
    fn remove_range_and_retain_close_the_gaps() {
        let mut v = InlineVec::<u32, 6>::new();
        for i in 0..6 {
            v.push(i).unwrap();
        }
        v.remove_range(1..3);
        assert_eq!(v.as_slice(), &[0, 3, 4, 5]);
        v.remove_range(2..2);
        assert_eq!(v.len(), 4);
        v.retain_mut(|x| {
            *x *= 10;
            *x != 30
        });
        assert_eq!(v.as_slice(), &[0, 40, 50]);
        v[0] = 7;
        assert_eq!(v.as_slice(), &[7, 40, 50]);
        v.clear();
        assert!(v.is_empty());
    }

    #[test]
    fn equality_ignores_slots_beyond_the_items() {
        let mut a = InlineVec::<u32, 4>::new();
        let mut b = InlineVec::<u32, 4>::new();
        a.push(9).unwrap();
        a.clear();
        assert_eq!(a, b);
        a.push(1).unwrap();
        b.push(1).unwrap();
        assert_eq!(a, b);
        b.push(2).unwrap();
        assert_ne!(a, b);
        assert_eq!(format!("{b:?}"), "[1, 2]");
    }
}
