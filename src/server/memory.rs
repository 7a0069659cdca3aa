//! The server holds every User of its namespace in memory (the directory), so how the allocator
//! keeps freed memory decides much of its resident size. glibc (the static build links it) gives
//! busy threads arenas of their own, up to eight per core, and keeps what was freed in each: the
//! directory's initial list and every watch event and response are allocated on tokio's worker
//! and blocking threads, and the server ended up holding several times the directory's size. Two
//! arenas are plenty for its allocation rate, and freed pages are handed back after the initial
//! sync and then every ten seconds (a trim of the server's heap takes well under a millisecond, and
//! `e2e/bench` showed 5 to 11 MiB freed but still resident between once-a-minute trims).

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

/// What the server's memory is made of, for the `infra_server_memory_bytes` gauge: how much of the
/// resident size is the program's own code and libraries (file-backed, shared with other
/// processes running the same binary) rather than its data, and how much of the allocator's memory
/// is live rather than freed but kept (fragmentation).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    pub resident_anonymous: u64,
    pub resident_file: u64,
    pub heap_in_use: u64,
    pub heap_free: u64,
}

pub fn stats() -> MemoryStats {
    let mut s = MemoryStats::default();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kib = |key: &str| {
            status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        s.resident_anonymous = kib("RssAnon:").unwrap_or(0) * 1024;
        s.resident_file = kib("RssFile:").unwrap_or(0) * 1024;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics (of every arena).
        let m = unsafe { libc::mallinfo2() };
        s.heap_in_use = (m.uordblks + m.hblkhd) as u64;
        s.heap_free = m.fordblks as u64;
    }
    s
}

/// Trims every ten seconds, off the async workers (a trim walks the heap).
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    });
}
