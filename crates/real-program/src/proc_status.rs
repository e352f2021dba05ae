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
