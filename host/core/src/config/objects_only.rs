//! Structs read from a JSON object only, never from an array.

/// `Deserialize` for structs that derive it with `#[serde(remote = "Self")]`
/// (which makes the derived reader an inherent `deserialize`): the struct
/// is read from a JSON object only. serde's derived reader also takes an
/// array and fills the fields in declaration order, so that `[]` was an
/// empty config, `["heartbeat.v1"]` a config with a `$schema`, and
/// `"window": ["09:00", "17:00"]` a window.
macro_rules! objects_only {
    ($($name:ident),*) => {$(
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(self, map: A) -> Result<$name, A::Error> {
                        // The inherent reader `remote = "Self"` derives.
                        $name::deserialize(::serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(V)
            }
        }
    )*};
}

pub(super) use objects_only;
