//! The standard `process_*` metrics (as the Prometheus client libraries of other languages export
//! them), read from `/proc` at each scrape. Elsewhere than Linux they are simply absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What `/proc` says about this process.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: i64,
    pub virtual_bytes: i64,
    pub start_time_seconds: i64,
    pub open_fds: i64,
    pub max_fds: i64,
}

/// Linux reports CPU times in clock ticks of `USER_HZ`, which is 100 on every architecture
/// Linux supports today (the kernel's own HZ may differ; USER_HZ does not).
const TICKS_PER_SECOND: f64 = 100.0;

/// Parses `/proc/self/stat` (CPU times and start time, in ticks), `/proc/self/status` (memory, in
/// kB, so no page size is assumed) and `/proc/stat` (boot time).
pub fn parse(stat: &str, status: &str, proc_stat: &str) -> Option<ProcessStats> {
    // The command name in parentheses may contain spaces: fields are counted after its `)`.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    // After `)`: state is field 3 of the man page, so man-page field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = field(14)? + field(15)?;
    let start_ticks = field(22)?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            .map(|k| k * 1024)
    };
    let boot = proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<i64>().ok())?;
    Some(ProcessStats {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        resident_bytes: kb("VmRSS:")?,
        virtual_bytes: kb("VmSize:")?,
        start_time_seconds: boot + (start_ticks as f64 / TICKS_PER_SECOND) as i64,
        ..Default::default()
    })
}

fn read() -> Option<ProcessStats> {
    let text = |p: &str| std::fs::read_to_string(p).ok();
    let mut stats = parse(&text("/proc/self/stat")?, &text("/proc/self/status")?, &text("/proc/stat")?)?;
    stats.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
    stats.max_fds = text("/proc/self/limits")?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(stats)
}

#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = read() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges = [
            ("process_resident_memory", "Resident memory size", Some(Unit::Bytes), s.resident_bytes),
            ("process_virtual_memory", "Virtual memory size", Some(Unit::Bytes), s.virtual_bytes),
            ("process_start_time", "Start time of the process since the Unix epoch", Some(Unit::Seconds), s.start_time_seconds),
            ("process_open_fds", "Open file descriptors", None, s.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors", None, s.max_fds),
        ];
        for (name, help, unit, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (infra (op) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 12345 987654 321 18446744073709551615";
        let status = "Name:\tinfra\nVmSize:\t  102400 kB\nVmRSS:\t   20480 kB\n";
        let s = parse(stat, status, "cpu  1 2 3\nbtime 1700000000\n").unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_bytes, 20480 * 1024);
        assert_eq!(s.virtual_bytes, 102400 * 1024);
        assert_eq!(s.start_time_seconds, 1700000000 + 123);
        assert_eq!(parse("garbage", status, "btime 1"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = read().expect("/proc is readable on Linux");
        assert!(s.resident_bytes > 0 && s.open_fds > 0 && s.max_fds >= s.open_fds, "{s:?}");
    }
}
