//! A JSON reader for request bodies that is stricter than serde's defaults: a struct is read
//! only from a JSON object (serde's derive also accepts an array of the fields in order, so
//! `["a@b.c","Ann","pw"]` would sign somebody up), and error messages speak of JSON, never of
//! the Rust types behind them.
//!
//! The body is parsed into a [`Value`] first, then read through [`Strict`], a deserializer over
//! that value which refuses anything but an object where a struct is expected, at every depth.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde_json::{Error, Map, Number, Value};

/// A deserializer over a parsed value that reads structs only from objects.
pub struct Strict<'a>(pub &'a Value);

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Unexpected::Signed)
            .or_else(|| n.as_u64().map(Unexpected::Unsigned))
            .unwrap_or_else(|| Unexpected::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: &Number, visitor: V) -> Result<V::Value, Error> {
    if let Some(u) = n.as_u64() {
        visitor.visit_u64(u)
    } else if let Some(i) = n.as_i64() {
        visitor.visit_i64(i)
    } else {
        visitor.visit_f64(n.as_f64().unwrap_or_default())
    }
}

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => visit_number(n, visitor),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
            other => Err(de::Error::invalid_type(unexpected(other), &"a JSON object")),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
            other => Err(de::Error::invalid_type(unexpected(other), &"a JSON object")),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            other => Err(de::Error::invalid_type(unexpected(other), &"a JSON array")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                let (variant, value) = map
                    .iter()
                    .next()
                    .ok_or_else(|| de::Error::custom("empty object"))?;
                visitor.visit_enum(Variant { variant, value })
            }
            other => Err(de::Error::invalid_type(
                unexpected(other),
                &"one of the allowed strings",
            )),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            other => Err(de::Error::invalid_type(unexpected(other), &"null")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit_struct tuple tuple_struct identifier
    }
}

struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|v| seed.deserialize(Strict(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Fields<'a> {
    entries: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        Fields {
            entries: map.iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                let key: de::value::BorrowedStrDeserializer<'de, Error> =
                    de::value::BorrowedStrDeserializer::new(key);
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value was read before its key"))?;
        seed.deserialize(Strict(value))
    }
}

struct Variant<'a> {
    variant: &'a str,
    value: &'a Value,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Strict<'de>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Strict<'de>), Error> {
        let name: de::value::BorrowedStrDeserializer<'de, Error> =
            de::value::BorrowedStrDeserializer::new(self.variant);
        Ok((seed.deserialize(name)?, Strict(self.value)))
    }
}

impl<'de> VariantAccess<'de> for Strict<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            Value::Null => Ok(()),
            other => Err(de::Error::invalid_type(unexpected(other), &"null")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }
}

/// Rewrites serde's wording into JSON terms: `expected struct ReplyBody` becomes
/// `expected a JSON object`, `expected u32` becomes `expected a whole number >= 0`.
pub fn plain_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("expected ") {
        out.push_str(&rest[..at + "expected ".len()]);
        rest = &rest[at + "expected ".len()..];
        let (word, after) = rest.split_at(rest.find([',', ' ', '`']).unwrap_or(rest.len()));
        let replacement = match word {
            "struct" | "tuple" | "map" => Some(("a JSON object", true)),
            "enum" => Some(("one of the allowed values", true)),
            "u8" | "u16" | "u32" | "u64" | "usize" => Some(("a whole number >= 0", false)),
            "i8" | "i16" | "i32" | "i64" | "isize" => Some(("a whole number", false)),
            "f32" | "f64" => Some(("a number", false)),
            _ => None,
        };
        if let Some((text, named)) = replacement {
            out.push_str(text);
            rest = after;
            // Drop the type's name (and serde's "with N elements") that followed the keyword.
            if named {
                rest = &rest[rest.find(',').unwrap_or(rest.len())..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        #[serde(default)]
        tags: Vec<String>,
        role: Option<Role>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        count: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        Admin,
        Member,
    }

    fn read(json: &str) -> Result<Outer, String> {
        let value: Value = serde_json::from_str(json).unwrap();
        Outer::deserialize(Strict(&value)).map_err(|e| plain_message(&e.to_string()))
    }

    #[test]
    fn objects_are_read_as_serde_json_reads_them() {
        let json = r#"{"name":"a","inner":{"count":3},"tags":["x"],"role":"admin"}"#;
        assert_eq!(read(json).unwrap(), serde_json::from_str::<Outer>(json).unwrap());
        assert_eq!(read(r#"{"name":"a","inner":null}"#).unwrap().inner, None);
    }

    #[test]
    fn arrays_are_not_structs_at_any_depth() {
        let err = read(r#"["a", null, [], null]"#).unwrap_err();
        assert_eq!(err, "invalid type: sequence, expected a JSON object");
        let err = read(r#"{"name":"a","inner":[3]}"#).unwrap_err();
        assert_eq!(err, "invalid type: sequence, expected a JSON object");
        assert!(read(r#""text""#).is_err());
    }

    #[test]
    fn messages_never_name_rust_types() {
        assert_eq!(
            plain_message("invalid type: sequence, expected struct ReplyBody with 2 elements"),
            "invalid type: sequence, expected a JSON object"
        );
        assert_eq!(
            plain_message("invalid value: integer `-1`, expected u32"),
            "invalid value: integer `-1`, expected a whole number >= 0"
        );
        let err = read(r#"{"name":"a","inner":{"count":-1}}"#).unwrap_err();
        assert!(!err.contains("u32"), "{err}");
        let err = read(r#"{"name":"a","role":"owner"}"#).unwrap_err();
        assert!(err.contains("unknown variant `owner`"), "{err}");
        let err = read(r#"{"name":"a","role":5}"#).unwrap_err();
        assert!(!err.contains("Role"), "{err}");
    }
}
