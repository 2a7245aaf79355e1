//! The value rules of tasktrail's dashboard settings, in one place.
//!
//! `tasktrail-macros` checks the literals written in `dashboard! { … }` at
//! compile time, and `tasktrail` checks the values a settings file brings at
//! run time (`DashboardSettings::validate`); both call these functions, so
//! the two accept exactly the same values and word their refusals alike.
//!
//! Each check returns `Ok(())` for a valid value, or the reason it is not
//! valid: a sentence that quotes the value and says what to write instead.
//! The caller adds the setting's name.
//!
//! ```
//! assert_eq!(tasktrail_rules::check_prefix("/ops/tasks"), Ok(()));
//! assert_eq!(
//!     tasktrail_rules::check_prefix("ops"),
//!     Err("`ops` must start with `/`".to_owned())
//! );
//! ```
//!
//! This crate is an implementation detail of `tasktrail`; depend on
//! `tasktrail` instead, which re-exports these functions in
//! `tasktrail::dashboard`.

#![forbid(unsafe_code)]

// The README's example compiles and runs with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Checks a URL prefix the dashboard is mounted under: `/`, or `/` followed
/// by path segments of letters, digits, `-`, `_` and `.` separated by single
/// slashes, with no trailing slash and no `.` or `..` segment.
///
/// ```
/// use tasktrail_rules::check_prefix;
///
/// assert_eq!(check_prefix("/"), Ok(()));
/// assert_eq!(check_prefix("/ops/tasks"), Ok(()));
/// assert_eq!(
///     check_prefix("/ops/"),
///     Err("`/ops/` must not end with `/`".to_owned())
/// );
/// ```
pub fn check_prefix(prefix: &str) -> Result<(), String> {
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

/// Checks an accent colour: `#rgb` or `#rrggbb`, hex digits in either case.
///
/// ```
/// use tasktrail_rules::check_colour;
///
/// assert_eq!(check_colour("#2563eb"), Ok(()));
/// assert!(check_colour("blue").is_err());
/// ```
pub fn check_colour(colour: &str) -> Result<(), String> {
    let hex = colour.strip_prefix('#').unwrap_or("");
    if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "`{colour}` is not a colour; write `#rgb` or `#rrggbb`, e.g. `#2563eb`"
        ))
    }
}

/// Checks the time zone shown times are written in: `UTC`, `local`, or a
/// fixed offset `+hh:mm` / `-hh:mm` of at most 14 hours (minutes below 60).
///
/// ```
/// use tasktrail_rules::check_time_zone;
///
/// assert_eq!(check_time_zone("+02:00"), Ok(()));
/// assert!(check_time_zone("Europe/Paris").is_err());
/// ```
pub fn check_time_zone(zone: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> Result<(), String> {
        Err(s.to_owned())
    }

    #[test]
    fn prefixes() {
        for ok in ["/", "/ops", "/ops/tasks", "/a-b_c.d/e1"] {
            assert_eq!(check_prefix(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ops",
            "ops/",
            "/ops/",
            "//ops",
            "/ops//x",
            "/ops/../x",
            "/ops/../admin",
            "/./x",
            "/ops x",
            "/ops?x",
            "/é",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    /// The messages the ui-tests' `.stderr` files pin (after the macro's
    /// `` `url_prefix`: ``), and one per remaining branch.
    #[test]
    fn prefix_messages() {
        assert_eq!(check_prefix("ops"), err("`ops` must start with `/`"));
        assert_eq!(check_prefix(""), err("`` must start with `/`"));
        assert_eq!(check_prefix("/ops/"), err("`/ops/` must not end with `/`"));
        assert_eq!(
            check_prefix("/ops/../admin"),
            err("`/ops/../admin` has a `..` segment")
        );
        assert_eq!(check_prefix("/./x"), err("`/./x` has a `.` segment"));
        assert_eq!(
            check_prefix("/ops//x"),
            err("`/ops//x` has an empty segment (`//`)")
        );
        assert_eq!(
            check_prefix("/ops?x"),
            err("`/ops?x` contains `?`; use letters, digits, `-`, `_`, `.` and `/`")
        );
    }

    #[test]
    fn colours() {
        for ok in ["#fff", "#2563EB", "#0f766e", "#f06824"] {
            assert_eq!(check_colour(ok), Ok(()), "{ok}");
        }
        for bad in ["fff", "#ffff", "#ggg", "red", "blue", ""] {
            assert!(check_colour(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_colour("blue"),
            err("`blue` is not a colour; write `#rgb` or `#rrggbb`, e.g. `#2563eb`")
        );
    }

    #[test]
    fn time_zones() {
        for ok in ["UTC", "local", "+02:00", "-09:30", "+14:00"] {
            assert_eq!(check_time_zone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "utc",
            "+2:00",
            "+15:00",
            "+02:60",
            "Europe/Paris",
            "Mars/Olympus",
            "",
        ] {
            assert!(check_time_zone(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_time_zone("Europe/Paris"),
            err(
                "`Europe/Paris` is not a time zone; write `UTC`, `local` or an offset such as `+02:00`"
            )
        );
    }
}
