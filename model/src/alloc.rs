//! The process's allocator setting for reading on the CPU.

/// Makes glibc's malloc serve all threads from one arena. A read on the CPU makes tensors on
/// rayon's threads (the note path runs beside the mixer) and frees many of them on others; with
/// glibc's default of an arena per thread the freed memory stays in the arena it came from, and
/// a read's peak memory climbed by about a third over its first 256k tokens before levelling
/// off. With one arena it is flat, at the same speed (docs/BENCHMARKS.md). Call it first thing
/// in `main`, before threads start. With another C library or system it does nothing.
pub fn single_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's <malloc.h>.
        const M_ARENA_MAX: i32 = -8;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only sets one of malloc's documented parameters.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }
}
