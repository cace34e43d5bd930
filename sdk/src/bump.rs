//! Optional bump allocator (feature `bump-allocator`, wasm32 only).
//!
//! The host runs every call in a fresh instance and drops its whole linear memory afterwards,
//! so a plugin never needs to return memory to an allocator: `dealloc` only reclaims the most
//! recent allocation (stack-like temporaries), `realloc` grows the most recent allocation in
//! place (a growing `Vec`), and everything else is released when the call ends. This removes
//! most of the per-candidate malloc/free work from a call. The cost: a policy that allocates
//! and frees a lot within one call uses more memory, bounded by the plugin's memory limit.
//! Use it for policies whose allocations are proportional to their input.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

const PAGE: usize = 65536;
/// Grow in steps of at least this many pages, to keep `memory.grow` calls rare.
const MIN_GROW_PAGES: usize = 16;

pub struct Bump {
    /// Next free byte and end of the owned region (0, 0 before the first allocation).
    next: Cell<usize>,
    end: Cell<usize>,
    /// Start of the most recent allocation, for in-place realloc and stack-like dealloc.
    last: Cell<usize>,
}

// SAFETY: wasm32 plugins run single-threaded (no threads proposal in the host).
#[allow(unsafe_code, reason = "GlobalAlloc requires Sync; the guest has one thread")]
unsafe impl Sync for Bump {}

impl Bump {
    pub const fn new() -> Self {
        Self { next: Cell::new(0), end: Cell::new(0), last: Cell::new(0) }
    }

    fn alloc_inner(&self, layout: Layout) -> *mut u8 {
        let align = layout.align();
        let mut start = (self.next.get() + align - 1) & !(align - 1);
        if self.end.get() == 0 || start + layout.size() > self.end.get() {
            let pages = layout.size().div_ceil(PAGE).max(MIN_GROW_PAGES) + 1;
            let previous = core::arch::wasm32::memory_grow(0, pages);
            if previous == usize::MAX {
                return core::ptr::null_mut();
            }
            let base = previous * PAGE;
            // Contiguous with the current region (nobody else grew memory): extend it.
            if self.end.get() != base {
                self.next.set(base);
            }
            self.end.set((previous + pages) * PAGE);
            start = (self.next.get() + align - 1) & !(align - 1);
        }
        self.next.set(start + layout.size());
        self.last.set(start);
        start as *mut u8
    }
}

#[allow(unsafe_code, reason = "implementing the global allocator")]
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.alloc_inner(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if ptr as usize == self.last.get() {
            self.next.set(self.last.get());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start == self.last.get() && start + new_size <= self.end.get() {
            self.next.set(start + new_size);
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        let new = self.alloc_inner(new_layout);
        if !new.is_null() {
            // SAFETY: both regions are valid for min(old, new) bytes and do not overlap
            // (`new` was carved out after `ptr`'s allocation).
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
