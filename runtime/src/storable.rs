//! Values every backend can store.
//!
//! PostgreSQL refuses a NUL character in `text` (SQLSTATE 22021) and in a
//! JSON string (`\u0000` in `jsonb`, 22P05); SQLite stores both. A run's
//! message, error text or payload must not be lost because a task's error
//! happened to carry one, so every text and JSON string is made storable
//! before it is bound: each NUL becomes U+FFFD (the replacement character),
//! on every backend alike, so a run reads back the same everywhere.

use std::borrow::Cow;

/// What a NUL character is stored as.
pub(crate) const NUL_REPLACEMENT: char = '\u{FFFD}';

/// `text` with every NUL replaced by U+FFFD; borrowed when it has none.
pub(crate) fn text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `key` made storable and bounded for an indexed column: NUL as U+FFFD
/// and, when longer than `max` bytes, cut to its first bytes (on a
/// character boundary) followed by `…` and 16 hex digits of the BLAKE2s
/// hash of the whole key — short enough for any index, and distinct for
/// keys that only differ after the cut. The same key always gives the same
/// stored form, so lookups apply it too.
pub(crate) fn bounded_key(key: &str, max: usize) -> Cow<'_, str> {
    use blake2::Digest;
    use std::fmt::Write as _;
    const MARK: &str = "…";
    const HASH_HEX: usize = 16;
    let key = text(key);
    if key.len() <= max {
        return key;
    }
    let cut = key.floor_char_boundary(max.saturating_sub(MARK.len() + HASH_HEX));
    let digest = blake2::Blake2s256::digest(key.as_bytes());
    let mut stored = String::with_capacity(max);
    stored.push_str(&key[..cut]);
    stored.push_str(MARK);
    for byte in &digest[..HASH_HEX / 2] {
        let _ = write!(stored, "{byte:02x}");
    }
    Cow::Owned(stored)
}

/// Replaces every NUL in `text`, in place.
pub(crate) fn text_in_place(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

/// Replaces every NUL in the strings and object keys of `value`, in place.
pub(crate) fn json_in_place(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => text_in_place(s),
        Value::Array(items) => items.iter_mut().for_each(json_in_place),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (mut k, mut v) in old {
                    text_in_place(&mut k);
                    json_in_place(&mut v);
                    map.insert(k, v);
                }
            } else {
                map.values_mut().for_each(json_in_place);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A bound value made storable: text and JSON strings without NUL.
pub(crate) fn value(value: sea_orm::Value) -> sea_orm::Value {
    use sea_orm::Value;
    match value {
        Value::String(Some(s)) if s.contains('\0') => Value::String(Some(text(&s).into_owned())),
        Value::Json(Some(mut json)) => {
            json_in_place(&mut json);
            Value::Json(Some(json))
        }
        Value::Char(Some('\0')) => Value::Char(Some(NUL_REPLACEMENT)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn nul_becomes_the_replacement_character() {
        assert_eq!(super::text("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(
            super::text("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
        let mut v = json!({"k\0": ["x\0", {"y": "\0"}], "n": 1, "s": "ok"});
        super::json_in_place(&mut v);
        assert_eq!(
            v,
            json!({"k\u{FFFD}": ["x\u{FFFD}", {"y": "\u{FFFD}"}], "n": 1, "s": "ok"})
        );
        let bound = super::value(sea_orm::Value::String(Some("e\0".into())));
        assert_eq!(bound, sea_orm::Value::String(Some("e\u{FFFD}".into())));
    }
}
