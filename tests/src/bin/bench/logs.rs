//! Reading meshd's JSON logs: events and their timestamps, the clock the benchmarks measure by.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshd_tests::Node;

/// One log event: when, the message, and its `node` field if any.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: SystemTime,
    pub message: String,
    pub node: Option<String>,
    pub availability: Option<String>,
}

/// Every event in `node`'s log (meshd started with `--log-format json`).
pub fn events(node: &Node) -> Vec<Event> {
    node.log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            let at = parse_rfc3339(v["timestamp"].as_str()?)?;
            let fields = &v["fields"];
            Some(Event {
                at,
                message: fields["message"].as_str()?.to_string(),
                node: fields["node"].as_str().map(str::to_string),
                availability: fields["availability"].as_str().map(str::to_string),
            })
        })
        .collect()
}

/// The first event on `node` after `since` that matches.
pub fn first_after(node: &Node, since: SystemTime, matches: impl Fn(&Event) -> bool) -> Option<SystemTime> {
    events(node).into_iter().filter(|e| e.at >= since && matches(e)).map(|e| e.at).min()
}

/// `2026-11-25T00:03:02.123456Z` (what tracing-subscriber writes) as a time.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<u64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let nanos: u64 = format!("{frac:0<9}")[..9].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(
        UNIX_EPOCH
            + Duration::from_secs(days * 86_400 + h * 3600 + min * 60 + s)
            + Duration::from_nanos(nanos),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_timestamps() {
        let t = parse_rfc3339("2026-11-25T00:03:02.5Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::from_millis(1_795_564_982_500));
    }
}
