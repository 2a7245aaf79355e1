//! Payloads to JSON: lenient serialisation, redaction and the size cap.

use serde::ser::{self, Serialize};
use serde_json::{Map, Number, Value};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The key of the marker object that replaces a payload over the size cap.
pub const TRUNCATED_KEY: &str = "$truncated";

/// Serialises `value` to JSON, stringifying what JSON cannot hold: non-finite
/// floats become `"NaN"` / `"inf"` / `"-inf"`, integers beyond 64 bits become
/// their decimal text, and map keys that are not strings become their JSON
/// text. A `Serialize` impl that fails gives a string naming the error instead
/// of no payload at all.
pub fn to_json_lenient<T: Serialize + ?Sized>(value: &T) -> Value {
    match value.serialize(Lenient) {
        Ok(v) => v,
        Err(e) => Value::String(format!("<unserializable: {e}>")),
    }
}

/// Replaces, at any depth, the value of every object key that equals one of
/// `keys` (ASCII case-insensitively) with [`REDACTED`].
pub fn redact(value: &mut Value, keys: &[&str]) {
    if keys.is_empty() {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if keys.iter().any(|r| r.eq_ignore_ascii_case(k)) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact(v, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, keys)),
        _ => {}
    }
}

/// Leaves `value` alone when its JSON text fits in `max_bytes`; otherwise
/// replaces it with a marker object
/// `{"$truncated": true, "bytes": N, "preview": "<start of the JSON text>"}`
/// that itself fits in `max_bytes` (the preview is dropped when even that
/// does not fit).
pub fn cap_payload(value: Value, max_bytes: usize) -> Value {
    // Measured without building the text (most payloads fit).
    if json_len(&value) <= max_bytes {
        return value;
    }
    let text = value.to_string();
    let marker = |preview: &str| serde_json::json!({ TRUNCATED_KEY: true, "bytes": text.len(), "preview": preview });
    let overhead = marker("").to_string().len();
    let mut budget = max_bytes.saturating_sub(overhead);
    // Escaping can grow the preview; shrink until it fits.
    loop {
        let mut cut = budget.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let candidate = marker(&text[..cut]);
        if candidate.to_string().len() <= max_bytes || cut == 0 {
            return candidate;
        }
        budget = cut / 2;
    }
}

/// The length of `value`'s compact JSON text, counted as it is written.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        // Cannot happen for a `Value`; measure the slow way.
        Err(_) => value.to_string().len(),
    }
}

struct Lenient;

fn number_or_text<N: ToString>(n: N, number: Option<Number>) -> Value {
    match number {
        Some(num) => Value::Number(num),
        None => Value::String(n.to_string()),
    }
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("inf".into()),
        None => Value::String("-inf".into()),
    }
}

fn tagged(variant: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(variant.to_owned(), value);
    Value::Object(map)
}

impl ser::Serializer for Lenient {
    type Ok = Value;
    type Error = serde_json::Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Seq;
    type SerializeMap = Obj;
    type SerializeStruct = Obj;
    type SerializeStructVariant = Obj;

    fn serialize_bool(self, v: bool) -> Result<Value, Self::Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Self::Error> {
        Ok(number_or_text(v, i64::try_from(v).ok().map(Number::from)))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Self::Error> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Self::Error> {
        Ok(number_or_text(v, u64::try_from(v).ok().map(Number::from)))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Self::Error> {
        Ok(float(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Self::Error> {
        Ok(float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Self::Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Self::Error> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Self::Error> {
        Ok(Value::Array(v.iter().map(|b| Value::from(*b)).collect()))
    }
    fn serialize_none(self) -> Result<Value, Self::Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Self::Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Self::Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, Self::Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, Self::Error> {
        Ok(Value::String(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Value, Self::Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Self::Error> {
        Ok(tagged(variant, value.serialize(Lenient)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Self::Error> {
        Ok(Seq {
            items: Vec::with_capacity(len.unwrap_or(0)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Self::Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, Self::Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq, Self::Error> {
        Ok(Seq {
            items: Vec::with_capacity(len),
            variant: Some(variant),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Obj, Self::Error> {
        Ok(Obj {
            map: Map::new(),
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Obj, Self::Error> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Obj, Self::Error> {
        Ok(Obj {
            map: Map::new(),
            key: None,
            variant: Some(variant),
        })
    }
}

struct Seq {
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl Seq {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.items.push(value.serialize(Lenient)?);
        Ok(())
    }
    fn finish(self) -> Value {
        let array = Value::Array(self.items);
        match self.variant {
            Some(v) => tagged(v, array),
            None => array,
        }
    }
}

/// serde's four sequence traits differ only in the method's name.
macro_rules! seq_impl {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for Seq {
            type Ok = Value;
            type Error = serde_json::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
                self.push(value)
            }
            fn end(self) -> Result<Value, Self::Error> {
                Ok(self.finish())
            }
        }
    )*};
}

seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

struct Obj {
    map: Map<String, Value>,
    key: Option<String>,
    variant: Option<&'static str>,
}

impl Obj {
    fn finish(self) -> Value {
        let object = Value::Object(self.map);
        match self.variant {
            Some(v) => tagged(v, object),
            None => object,
        }
    }
}

impl ser::SerializeMap for Obj {
    type Ok = Value;
    type Error = serde_json::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Self::Error> {
        self.key = Some(match key.serialize(Lenient)? {
            Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        let key = self.key.take().unwrap_or_default();
        self.map.insert(key, value.serialize(Lenient)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Self::Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for Obj {
    type Ok = Value;
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.map.insert(key.to_owned(), value.serialize(Lenient)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Self::Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Obj {
    type Ok = Value;
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.map.insert(key.to_owned(), value.serialize(Lenient)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Self::Error> {
        Ok(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    #[test]
    fn stringifies_what_json_cannot_hold() {
        let mut keyed = BTreeMap::new();
        keyed.insert((1, 2), "tuple key");
        let v = to_json_lenient(&(f64::NAN, f32::INFINITY, -f64::INFINITY, u128::MAX, keyed));
        assert_eq!(
            v,
            json!(["NaN", "inf", "-inf", u128::MAX.to_string(), {"[1,2]": "tuple key"}])
        );
        assert_eq!(
            to_json_lenient(&[
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Rect { w: 2, h: 3 },
                Shape::Pair(1, -1)
            ]),
            json!(["Dot", {"Circle": 1.5}, {"Rect": {"w": 2, "h": 3}}, {"Pair": [1, -1]}])
        );
        assert_eq!(to_json_lenient(&Some(5_u8)), json!(5));
        assert_eq!(to_json_lenient(&b"ab"[..]), json!([97, 98]));
    }

    #[test]
    fn failing_serialize_becomes_a_string() {
        struct Broken;
        impl Serialize for Broken {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("nope"))
            }
        }
        assert_eq!(to_json_lenient(&Broken), json!("<unserializable: nope>"));
    }

    #[test]
    fn redacts_at_any_depth() {
        let mut v = json!({
            "user": "ada",
            "Password": "hunter2",
            "nested": [{"token": "t", "keep": 1}, {"deep": {"password": {"a": 1}}}]
        });
        redact(&mut v, &["password", "token"]);
        assert_eq!(
            v,
            json!({
                "user": "ada",
                "Password": REDACTED,
                "nested": [{"token": REDACTED, "keep": 1}, {"deep": {"password": REDACTED}}]
            })
        );
    }

    #[test]
    fn json_len_is_the_length_of_the_text() {
        for v in [
            json!(null),
            json!("a \"quoted\" \u{1F600} \n text"),
            json!({"k": [1, 2.5, -3e300, true, {"n": null}], "é": "\u{0}"}),
            json!([]),
        ] {
            assert_eq!(json_len(&v), v.to_string().len(), "{v}");
            // Exactly at the cap: kept; one byte under: capped.
            let n = json_len(&v);
            assert_eq!(cap_payload(v.clone(), n), v);
        }
    }

    #[test]
    fn caps_large_payloads_with_a_marker() {
        let small = json!({"a": 1});
        assert_eq!(cap_payload(small.clone(), 100), small);
        let big = json!({"blob": "é\"".repeat(5000)});
        let capped = cap_payload(big.clone(), 300);
        assert!(
            capped.to_string().len() <= 300,
            "{}",
            capped.to_string().len()
        );
        assert_eq!(capped[TRUNCATED_KEY], json!(true));
        assert_eq!(capped["bytes"], json!(big.to_string().len()));
        assert!(
            big.to_string()
                .starts_with(capped["preview"].as_str().unwrap())
        );
        let tiny = cap_payload(big, 10);
        assert_eq!(tiny[TRUNCATED_KEY], json!(true));
    }
}
