//! Peak resident set size from `/proc/self/status` (Linux).

/// VmHWM (peak RSS) in KiB, or `None` where `/proc` is not there.
#[must_use]
pub fn peak_rss_kib() -> Option<u64> {
    status_field("VmHWM:")
}

/// VmRSS (current RSS) in KiB.
#[must_use]
pub fn rss_kib() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_field(&status, key)
}

/// The KiB value of `key` (e.g. `"VmHWM:"`) in a `/proc/PID/status` text.
#[must_use]
pub fn parse_status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resets VmHWM to the current RSS (writes `5` to `/proc/self/clear_refs`, Linux ≥ 4.0).
/// Returns whether that worked.
#[must_use]
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Clock ticks per second in `/proc/*/stat` and `/proc/stat` (`USER_HZ`: 100 on every Linux
/// architecture this runs on).
const USER_HZ: f64 = 100.0;

/// This process's CPU time so far (user + system, all threads, live and exited), seconds.
#[must_use]
pub fn cpu_seconds() -> Option<f64> {
    parse_process_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User + system seconds from a `/proc/PID/stat` line (fields 14 and 15).
#[must_use]
pub fn parse_process_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU time every core of the machine has spent busy since boot (everything but idle and
/// I/O wait), seconds.
#[must_use]
pub fn machine_busy_seconds() -> Option<f64> {
    parse_machine_busy(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Busy seconds from a `/proc/stat` text (its `cpu` line).
#[must_use]
pub fn parse_machine_busy(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Some(busy as f64 / USER_HZ)
}
