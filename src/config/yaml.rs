//! YAML helpers shared by the configuration loader: YAML text to a JSON value, so that serde
//! types (with `deny_unknown_fields`) can be filled from YAML while only one YAML parser, the
//! one the rule loader uses for its positions, is linked in.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Converts the first document of a YAML text to JSON. An empty text gives `Value::Null`.
/// Errors carry the line and column the parser reports.
pub(crate) fn to_json(text: &str) -> Result<Value, String> {
    let documents = YamlLoader::load_from_str(text).map_err(|error| error.to_string())?;
    match documents.as_slice() {
        [] => Ok(Value::Null),
        [document] => convert(document),
        _ => Err("expected one YAML document, found several".to_owned()),
    }
}

fn convert(node: &Yaml) -> Result<Value, String> {
    Ok(match node {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(value) => Value::Bool(*value),
        Yaml::Integer(value) => Value::Number(Number::from(*value)),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.clone())),
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(convert).collect::<Result<_, _>>()?),
        Yaml::Hash(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Yaml::String(text) => text.clone(),
                    Yaml::Integer(number) => number.to_string(),
                    Yaml::Boolean(flag) => flag.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                object.insert(key, convert(value)?);
            }
            Value::Object(object)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not supported in configuration".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_scalars_lists_and_maps() {
        let value = to_json("a: 1\nb: [x, 'y']\nc: {d: true}\ne: 1.5\nf: ~\n").expect("valid");
        assert_eq!(
            value,
            serde_json::json!({"a": 1, "b": ["x", "y"], "c": {"d": true}, "e": 1.5, "f": null})
        );
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let error = to_json("a: [1, 2\nb: 3\n").expect_err("unclosed flow sequence");
        assert!(error.contains("line"), "{error}");
    }
}
