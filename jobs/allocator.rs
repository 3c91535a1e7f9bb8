//! The allocator that every binary and the test binary declare in their own `main.rs`
//! (`#[global_allocator]`, as datafusion-cli does): mimalloc. DataFusion's hash tables and
//! batches allocate and free large buffers all night, and glibc's malloc hands those pages back
//! to the kernel, which zeroes them when they are asked for again
//! (docs/design/performance.md).

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v3, the version libmimalloc-sys 0.1.49
/// builds): the sys crate leaves the option indices unexported, so the index is written here and
/// a test reads the option's documented default through it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The allocator type; a binary declares
/// `#[global_allocator] static ALLOCATOR: Allocator = Allocator;`.
pub use mimalloc::MiMalloc as Allocator;

/// Keeps freed memory in the process for the next allocation instead of returning it to the
/// system a second later. Freed pages count in the RSS until the process ends, so only a process
/// without a memory cap asks for it.
pub(crate) fn keep_freed_memory() {
    // SAFETY: sets one integer option; mimalloc reads it when deciding whether to purge.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The purge delay in milliseconds; -1 is never.
    fn purge_delay() -> i64 {
        // SAFETY: reads one integer option.
        unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) as i64 }
    }

    #[test]
    fn the_purge_delay_is_the_option_it_is_named_for() {
        // The option mimalloc documents with a 1000 ms default (v3's options.c), unless a test
        // in this process already asked to keep freed memory.
        let before = purge_delay();
        assert!(before == 1000 || before == -1, "option {PURGE_DELAY} is {before}");
        keep_freed_memory();
        assert_eq!(purge_delay(), -1);
    }
}
