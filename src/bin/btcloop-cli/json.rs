//! A JSON value that behaves like Bitcoin Core's UniValue where bitcoin-cli's output depends on
//! it: object keys keep their order (duplicates allowed), numbers keep their text (`0.00001000`
//! stays `0.00001000`), `read` accepts what UniValue accepts, and `write`/`pretty` print what
//! UniValue's `write()`/`write(2)` print (`[\n]` for an empty array, DEL escaped, …).

use std::fmt::Write as _;

/// UniValue's nesting limit.
const MAX_DEPTH: usize = 512;

/// A JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's text, as read or as given.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Keys in order; a key may repeat (UniValue's `pushKVEnd`).
    Object(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    /// A number from an integer.
    pub fn int(n: i64) -> Json {
        Json::Number(n.to_string())
    }

    /// A string value.
    pub fn str(s: &str) -> Json {
        Json::String(s.to_string())
    }

    /// Parses `text` as UniValue's `read` does; `None` where it fails.
    pub fn parse(text: &str) -> Option<Json> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value(0)?;
        p.skip_ws();
        (p.i == p.s.len()).then_some(v)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// The value of the first `key` of an object; null when absent or not an object.
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Json::Object(kv) => kv.iter().find(|(k, _)| k == key).map_or(&NULL, |(_, v)| v),
            _ => &NULL,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as an integer, if it is one that fits (UniValue's `getInt`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// The number as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// UniValue's `getValStr()`: a string's text, a number's text, `1` for true, and the
    /// empty string for false, null, arrays and objects.
    pub fn val_str(&self) -> &str {
        match self {
            Json::String(s) | Json::Number(s) => s,
            Json::Bool(true) => "1",
            _ => "",
        }
    }

    /// UniValue's type name, for its "JSON value of type X" errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "bool",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// Sets `key` (the first one, if present) or appends it: UniValue's `pushKV`. No-op on
    /// non-objects.
    pub fn push_kv(&mut self, key: &str, value: Json) {
        if let Json::Object(kv) = self {
            match kv.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => kv.push((key.to_string(), value)),
            }
        }
    }

    /// Compact text, as UniValue's `write()`.
    pub fn write(&self) -> String {
        let mut out = String::new();
        self.write_into(&mut out, 0, 1);
        out
    }

    /// Text indented by 2, as UniValue's `write(2)`.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write_into(&mut out, 2, 1);
        out
    }

    fn write_into(&self, out: &mut String, indent: usize, level: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => escape_into(out, s),
            Json::Array(items) => {
                out.push('[');
                Self::write_items(out, indent, level, items.iter().map(|v| (None, v)));
                out.push(']');
            }
            Json::Object(kv) => {
                out.push('{');
                Self::write_items(out, indent, level, kv.iter().map(|(k, v)| (Some(k.as_str()), v)));
                out.push('}');
            }
        }
    }

    fn write_items<'a>(
        out: &mut String,
        indent: usize,
        level: usize,
        items: impl ExactSizeIterator<Item = (Option<&'a str>, &'a Json)>,
    ) {
        let n = items.len();
        if indent > 0 {
            out.push('\n');
        }
        for (i, (key, v)) in items.enumerate() {
            out.extend(std::iter::repeat_n(' ', indent * level));
            if let Some(k) = key {
                escape_into(out, k);
                out.push(':');
                if indent > 0 {
                    out.push(' ');
                }
            }
            v.write_into(out, indent, level + 1);
            if i + 1 != n {
                out.push(',');
            }
            if indent > 0 {
                out.push('\n');
            }
        }
        out.extend(std::iter::repeat_n(' ', indent * (level - 1)));
    }

    /// The same value as a `serde_json::Value` (numbers serde_json cannot hold become null;
    /// of repeated keys the first wins, as UniValue's lookups).
    pub fn to_serde(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => serde_json::from_str::<serde_json::Number>(n).map_or(Value::Null, Value::Number),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_serde).collect()),
            Json::Object(kv) => {
                let mut map = serde_json::Map::new();
                for (k, v) in kv {
                    if !map.contains_key(k) {
                        map.insert(k.clone(), v.to_serde());
                    }
                }
                Value::Object(map)
            }
        }
    }
}

/// A quoted string escaped as UniValue escapes it: `"` and `\`, control characters (`\b`,
/// `\t`, `\n`, `\f`, `\r`, else `\u00XX`) and DEL; everything else as is.
fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        self.skip_ws();
        match self.peek()? {
            b'{' | b'[' if depth + 1 > MAX_DEPTH => None,
            b'{' => {
                self.i += 1;
                let mut kv = Vec::new();
                if self.eat(b'}') {
                    return Some(Json::Object(kv));
                }
                loop {
                    self.skip_ws();
                    if self.peek()? != b'"' {
                        return None;
                    }
                    let k = self.string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    kv.push((k, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Some(Json::Object(kv));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Some(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.string().map(Json::String),
            b'-' | b'0'..=b'9' => self.number(),
            _ => {
                for (word, v) in [("null", Json::Null), ("true", Json::Bool(true)), ("false", Json::Bool(false))] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Some(v);
                    }
                }
                None
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = self.digits();
        if n == 0 || (n > 1 && self.s[int_start] == b'0') {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        std::str::from_utf8(&self.s[start..self.i]).ok().map(|t| Json::Number(t.to_string()))
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        self.i += 4;
        Some(v)
    }

    /// A string starting at the opening quote; escapes decoded, surrogate pairs joined, lone
    /// surrogates and raw control characters refused.
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(cp)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return None,
                b => out.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_number_text() {
        let v = Json::parse(r#"{"z":1,"a":0.00001000,"m":[true,null,"x"],"e":-1.5E+3}"#).unwrap();
        assert_eq!(v.write(), r#"{"z":1,"a":0.00001000,"m":[true,null,"x"],"e":-1.5E+3}"#);
        assert_eq!(v.get("a").val_str(), "0.00001000");
        assert!(v.get("missing").is_null());
        assert!(Json::int(3).get("x").is_null());
    }

    #[test]
    fn pretty_prints_like_univalue() {
        let v = Json::parse(r#"{"a":[],"b":{},"c":[1,{"d":"e"}]}"#).unwrap();
        let expected =
            "{\n  \"a\": [\n  ],\n  \"b\": {\n  },\n  \"c\": [\n    1,\n    {\n      \"d\": \"e\"\n    }\n  ]\n}";
        assert_eq!(v.pretty(), expected);
        assert_eq!(Json::Array(vec![]).pretty(), "[\n]");
        assert_eq!(Json::int(5).pretty(), "5");
    }

    #[test]
    fn escapes_as_univalue() {
        let s = Json::str("a\"b\\c\n\u{1}\u{7f}/é");
        assert_eq!(s.write(), "\"a\\\"b\\\\c\\n\\u0001\\u007f/é\"");
        assert_eq!(Json::parse(&s.write()), Some(s));
        assert_eq!(Json::parse(r#""\ud83d\ude00\u00e9\/""#), Some(Json::str("😀é/")));
    }

    #[test]
    fn rejects_what_univalue_rejects() {
        for bad in [
            "",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "nul",
            "truex",
            "{1:2}",
            "\"a\nb\"",
            "\"\\ud800\"",
            "\"\\x\"",
            "[",
            "{\"a\"}",
            "1 2",
            "+1",
            "\u{c}1",
        ] {
            assert_eq!(Json::parse(bad), None, "{bad:?}");
        }
        for good in ["0", "-0", " [ ] ", "{}", "\"\"", "null", "1e-7", "[[[]]]", "\t{\"a\" : [ 1 , 2 ] }\n"] {
            assert!(Json::parse(good).is_some(), "{good:?}");
        }
        let deep = "[".repeat(512) + &"]".repeat(512);
        assert!(Json::parse(&deep).is_some());
        let too_deep = "[".repeat(513) + &"]".repeat(513);
        assert_eq!(Json::parse(&too_deep), None);
    }

    #[test]
    fn push_kv_replaces_first_and_serde_conversion() {
        let mut o = Json::Object(vec![]);
        o.push_kv("a", Json::int(1));
        o.push_kv("b", Json::int(2));
        o.push_kv("a", Json::int(3));
        assert_eq!(o.write(), r#"{"a":3,"b":2}"#);
        let dup = Json::parse(r#"{"k":1,"k":[2.5,"s",false]}"#).unwrap();
        assert_eq!(dup.to_serde(), serde_json::json!({"k": 1}));
        assert_eq!(Json::parse("[2.5,\"s\",false]").unwrap().to_serde(), serde_json::json!([2.5, "s", false]));
        assert_eq!(Json::Bool(true).val_str(), "1");
        assert_eq!(Json::Bool(false).val_str(), "");
        assert_eq!(Json::str("7").as_i64(), None);
        assert_eq!(Json::Number("-28".into()).as_i64(), Some(-28));
        assert_eq!(Json::Number("1.5".into()).as_i64(), None);
    }
}
