//! Value checks shared in spirit with the runtime's
//! `tasktrail::dashboard::DashboardSettings::validate` (which checks values
//! from settings files): the two must accept the same values. A proc-macro
//! crate cannot export functions, so the rules are written here again; the
//! ui-tests and the runtime's unit tests pin the same cases.

/// `/`, or `/seg/seg` with letters, digits, `-`, `_`, `.`; no trailing
/// slash, no empty, `.` or `..` segment.
pub fn prefix(prefix: &str) -> Result<(), String> {
    if prefix == "/" {
        return Ok(());
    }
    let Some(rest) = prefix.strip_prefix('/') else {
        return Err(format!("`{prefix}` must start with `/`"));
    };
    if rest.ends_with('/') {
        return Err(format!("`{prefix}` must not end with `/`"));
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(format!("`{prefix}` has an empty segment (`//`)"));
        }
        if segment == "." || segment == ".." {
            return Err(format!("`{prefix}` has a `{segment}` segment"));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "`{prefix}` contains `{c}`; use letters, digits, `-`, `_`, `.` and `/`"
            ));
        }
    }
    Ok(())
}

/// `#rgb` or `#rrggbb`.
pub fn colour(colour: &str) -> Result<(), String> {
    let hex = colour.strip_prefix('#').unwrap_or("");
    if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "`{colour}` is not a colour; write `#rgb` or `#rrggbb`, e.g. `#2563eb`"
        ))
    }
}

/// `UTC`, `local`, or `+hh:mm` / `-hh:mm`.
pub fn time_zone(zone: &str) -> Result<(), String> {
    if zone == "UTC" || zone == "local" {
        return Ok(());
    }
    let bytes = zone.as_bytes();
    let offset_ok = bytes.len() == 6
        && matches!(bytes[0], b'+' | b'-')
        && bytes[3] == b':'
        && [1, 2, 4, 5].iter().all(|&i| bytes[i].is_ascii_digit())
        && zone[1..3].parse::<u32>().is_ok_and(|h| h <= 14)
        && zone[4..6].parse::<u32>().is_ok_and(|m| m < 60);
    if offset_ok {
        Ok(())
    } else {
        Err(format!(
            "`{zone}` is not a time zone; write `UTC`, `local` or an offset such as `+02:00`"
        ))
    }
}
