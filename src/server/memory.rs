//! The server holds every User of its namespace in memory (the directory), so how the allocator
//! keeps freed memory decides much of its resident size. glibc (the static build links it) gives
//! busy threads arenas of their own, up to eight per core, and keeps what was freed in each: the
//! directory's initial list and every watch event and response are allocated on tokio's worker
//! and blocking threads, and the server ended up holding several times the directory's size. Two
//! arenas are plenty for its allocation rate, and freed pages are handed back after the initial
//! sync and then once a minute.

/// Limits glibc's arenas; call before the server's work starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; M_ARENA_MAX takes effect for arenas
    // created later.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed memory to the operating system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims once a minute, off the async workers (a trim walks the heap).
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    });
}
