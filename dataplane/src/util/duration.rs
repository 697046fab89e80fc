//! Durations on the command line: `500ms`, `2s`, `5m`, `24h`, `90d` (a plain number is seconds),
//! each flag with a range it must fall in. Arithmetic is checked: `99999999999999999h` is an
//! error, not an overflow.

use std::time::Duration;

/// Parses a duration of at least one millisecond and at most 100 years (anything longer is
/// certainly a typo, and would overflow the clocks it is added to).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || format!("{text:?} is not a duration like 500ms, 2s, 5m, 24h or 90d");
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?} has an unknown unit (use ms, s, m, h or d)")),
    };
    const LIMIT_MS: u64 = 100 * 365 * 86_400_000;
    let millis = value
        .checked_mul(millis_per_unit)
        .filter(|ms| *ms <= LIMIT_MS)
        .ok_or_else(|| format!("{text:?} is too long (at most 100 years)"))?;
    if millis == 0 {
        return Err(format!("{text:?} must be more than zero"));
    }
    Ok(Duration::from_millis(millis))
}

/// A parser for a flag whose duration must lie in `min..=max` (for clap's `value_parser`).
pub fn within(min: Duration, max: Duration) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |text| {
        let value = parse(text)?;
        if value < min || value > max {
            return Err(format!("{text:?} is out of range ({} to {})", show(min), show(max)));
        }
        Ok(value)
    }
}

/// A duration as a person writes it: the largest unit that divides it.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse("90d"), Ok(Duration::from_secs(90 * 86400)));
        for bad in ["", "ms", "0s", "1w", "-1s", "1.5s", "99999999999999999999s", "99999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_are_enforced_with_a_clear_error() {
        let grace = within(Duration::from_millis(1), Duration::from_secs(3600));
        assert_eq!(grace("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(grace("2h").unwrap_err(), "\"2h\" is out of range (1ms to 1h)");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_secs(120)), "2m");
    }
}
