//! Keeps freed memory in the process heap (glibc): the engine allocates and frees the same
//! large buffers every forward pass (a 4,096-token batch's MLP output alone is ~100 MB), and
//! glibc serves anything over 32 MB — and by default anything over its adaptive threshold —
//! with a fresh mmap that is unmapped on free, so each forward page-faulted and zeroed its
//! buffers anew (~20% of cycles at 2 threads on the 353M benchmark model; 2.0 s → 1.75 s per
//! prompt-heavy case). Memory the model frees is kept for the next forward instead. A user
//! who sets glibc's own `MALLOC_MMAP_MAX_` or `MALLOC_TRIM_THRESHOLD_` keeps their choice.

/// Applies the policy above; called once a model is loaded (the load's own transient copies
/// are returned to the OS as before, so the load's peak stays the model's size).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_MAX_").is_some() || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some() {
            return;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_MAX: std::ffi::c_int = -4;
        // SAFETY: mallopt only changes allocator tuning parameters; glibc documents it as
        // callable at any time and takes its own arena lock.
        #[allow(unsafe_code, reason = "glibc's mallopt, declared here as glibc declares it")]
        unsafe {
            unsafe extern "C" {
                fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
            }
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, std::ffi::c_int::MAX);
        }
    }
}
