//! Durations and sizes as people write them on a command line and as the
//! API server writes them in `?timeout=`: Go durations (`2s`, `500ms`,
//! `1m30s`) and Kubernetes-style sizes (`32Mi`, `1Gi`).

use std::time::Duration;

/// Parses a Go duration string such as `10s`, `1m30s`, `500ms` or `2.5s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    // try_from: a huge value from a request must be an error, not a panic.
    Duration::try_from_secs_f64(total).ok()
}

/// Parses a Go-style duration flag.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration (examples: 2s, 500ms, 1m30s)"))
}

/// Parses a byte count: a plain number, or one with a Kubernetes-style
/// suffix (Ki, Mi, Gi, with or without a trailing B; K, M, G are powers of
/// ten).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 32Mi, 64MiB, 1Gi, 1048576)"))?;
    let scale: u64 = match unit.trim().trim_end_matches('B') {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (Ki, Mi, Gi, K, M, G)"
            ))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_timeouts_the_api_server_sends() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("99999999999999999999999h"), None);
        assert_eq!(parse_go_duration("1e400s"), None);
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn sizes_parse_like_kubernetes_quantities() {
        assert_eq!(parse_bytes("32Mi"), Ok(32 << 20));
        assert_eq!(parse_bytes("32MiB"), Ok(32 << 20));
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("500K"), Ok(500_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3Ti").is_err());
        assert!(parse_bytes("99999999999999999999Gi").is_err());
    }
}
