//! RPC argument handling as Core's `RPCMethod`/`transformNamedArguments`: named parameters
//! mapped to positions, the argument count checked (the help text is the error), and each
//! argument's JSON type checked with Core's messages.

use serde_json::{Map, Value, json};

use crate::daemon::inspect::{RpcError, code};

/// An argument's JSON type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A string.
    Str,
    /// A number.
    Num,
    /// true or false.
    Bool,
    /// An array.
    Arr,
    /// Anything: the method checks it itself (Core's `skip_type_check`).
    Any,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Num => "number",
            Ty::Bool => "bool",
            Ty::Arr => "array",
            Ty::Any => "any",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::Num => v.is_number(),
            Ty::Bool => v.is_boolean(),
            Ty::Arr => v.is_array(),
            Ty::Any => true,
        }
    }
}

/// Univalue's name of a value's type.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One argument of a method.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    /// Its name (`a|b` for aliases, as Core).
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Whether it must be given.
    pub required: bool,
}

/// A required argument.
pub const fn req(name: &'static str, ty: Ty) -> Arg {
    Arg { name, ty, required: true }
}

/// An optional argument.
pub const fn opt(name: &'static str, ty: Ty) -> Arg {
    Arg { name, ty, required: false }
}

/// Core's `transformNamedArguments` (without named-only options): named parameters become
/// positional ones, holes filled with null; `args` supplies leading positional ones.
pub fn positional(params: &Value, args: &[Arg]) -> Result<Vec<Value>, RpcError> {
    let named = match params {
        Value::Array(a) => return Ok(a.clone()),
        Value::Object(o) => o,
        _ => return Ok(Vec::new()),
    };
    let mut left: Map<String, Value> = named.clone();
    let mut out: Vec<Value> = Vec::new();
    let mut hole = 0;
    let mut initial_hole = 0;
    let mut first_named: Option<&str> = None;
    for arg in args {
        let found = arg.name.split('|').find_map(|n| left.remove(n));
        match found {
            Some(v) => {
                out.extend(std::iter::repeat_n(Value::Null, hole));
                hole = 0;
                first_named.get_or_insert(arg.name);
                out.push(v);
            }
            None => {
                hole += 1;
                if out.is_empty() {
                    initial_hole = hole;
                }
            }
        }
    }
    if let Some(Value::Array(pos)) = left.remove("args") {
        if let (Some(name), true) = (first_named, initial_hole < pos.len()) {
            return Err(RpcError::invalid_param(format!(
                "Parameter {name} specified twice both as positional and named argument"
            )));
        }
        let named_part = std::mem::replace(&mut out, pos);
        let skip = out.len();
        out.extend(named_part.into_iter().skip(skip));
    }
    if let Some(k) = left.keys().next() {
        return Err(RpcError::invalid_param(format!("Unknown named parameter {k}")));
    }
    Ok(out)
}

/// Core's argument checks: a wrong count throws the help text; wrong types a `Wrong type
/// passed` error naming each position.
pub fn check(values: &[Value], args: &[Arg], help: &str) -> Result<(), RpcError> {
    let required = args.iter().filter(|a| a.required).count();
    if values.len() > args.len() || values.len() < required {
        return Err(RpcError::new(code::MISC_ERROR, help));
    }
    let mut mismatch = Map::new();
    for (i, (arg, v)) in args.iter().zip(values).enumerate() {
        if v.is_null() && !arg.required {
            continue;
        }
        if !arg.ty.matches(v) {
            mismatch.insert(
                format!("Position {} ({})", i + 1, arg.name),
                json!(format!("JSON value of type {} is not of expected type {}", type_name(v), arg.ty.name())),
            );
        }
    }
    if !mismatch.is_empty() {
        let text = pretty4(&Value::Object(mismatch));
        return Err(RpcError::new(code::TYPE_ERROR, format!("Wrong type passed:\n{text}")));
    }
    Ok(())
}

/// JSON with a 4-space indent (univalue's `write(4)`).
fn pretty4(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    match serde::Serialize::serialize(v, &mut ser) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => v.to_string(),
    }
}

/// Argument `i`, if given and not null.
pub fn arg(values: &[Value], i: usize) -> Option<&Value> {
    values.get(i).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGS: [Arg; 3] = [req("a", Ty::Str), opt("b", Ty::Num), opt("c|alias", Ty::Bool)];

    #[test]
    fn named_become_positional_with_holes() {
        assert_eq!(positional(&json!({"a": "x"}), &ARGS).unwrap(), vec![json!("x")]);
        assert_eq!(
            positional(&json!({"alias": true, "a": "x"}), &ARGS).unwrap(),
            vec![json!("x"), json!(null), json!(true)]
        );
        assert_eq!(positional(&json!({"args": ["x"], "b": 2}), &ARGS).unwrap(), vec![json!("x"), json!(2)]);
        let err = positional(&json!({"a": "x", "zzz": 1}), &ARGS).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (-8, "Unknown named parameter zzz"));
        let err = positional(&json!({"args": ["x", 1], "b": 2}), &ARGS).unwrap_err();
        assert!(err.message.contains("specified twice"), "{err:?}");
    }

    #[test]
    fn counts_and_types_checked_like_core() {
        assert!(check(&[json!("x")], &ARGS, "help").is_ok());
        assert!(check(&[json!("x"), json!(null), json!(false)], &ARGS, "help").is_ok());
        let e = check(&[], &ARGS, "the help").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (-1, "the help"));
        assert_eq!(check(&[json!(1), json!(2), json!(3), json!(4)], &ARGS, "h").unwrap_err().code, -1);
        let e = check(&[json!(1), json!("2")], &ARGS, "h").unwrap_err();
        assert_eq!(e.code, -3);
        assert_eq!(
            e.message,
            "Wrong type passed:\n{\n    \"Position 1 (a)\": \"JSON value of type number is not of expected type string\",\n    \"Position 2 (b)\": \"JSON value of type string is not of expected type number\"\n}"
        );
    }
}
