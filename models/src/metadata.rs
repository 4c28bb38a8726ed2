//! Ultralytics export metadata: ONNX `metadata_props` written as Python literals
//! (`names: {0: 'person', 1: 'bicycle'}`, `imgsz: [640, 640]`, `stride: 32`).

/// What an Ultralytics export says about itself; every field is optional because other
/// exporters write none of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UltralyticsMetadata {
    /// Class names by index.
    pub names: Option<Vec<String>>,
    /// Input `[height, width]` the model was exported for.
    pub imgsz: Option<[u32; 2]>,
    /// Largest stride of the detection head.
    pub stride: Option<u32>,
}

impl UltralyticsMetadata {
    /// Reads the fields from `(key, value)` metadata pairs; unknown keys are ignored and a
    /// malformed value counts as absent (the output shape still decides the layout).
    pub fn from_props<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut meta = Self::default();
        for (key, value) in props {
            match key {
                "names" => meta.names = parse_names(value),
                "imgsz" => meta.imgsz = parse_imgsz(value),
                "stride" => meta.stride = value.trim().parse().ok(),
                _ => {}
            }
        }
        meta
    }
}

/// Parses a Python dict literal `{0: 'person', 1: "it's"}` (or a list `['a', 'b']`) into names by
/// index. Indices must be 0..n without gaps.
pub fn parse_names(literal: &str) -> Option<Vec<String>> {
    let body = literal.trim();
    let (is_dict, body) = if let Some(inner) = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')) {
        (true, inner)
    } else {
        (false, body.strip_prefix('[').and_then(|b| b.strip_suffix(']'))?)
    };
    let mut chars = body.chars().peekable();
    let mut entries: Vec<(usize, String)> = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let index = if is_dict {
            let digits: String = std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_digit())).collect();
            let index = digits.parse().ok()?;
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next()? != ':' {
                return None;
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            index
        } else {
            entries.len()
        };
        let quote = chars.next().filter(|q| *q == '\'' || *q == '"')?;
        let mut name = String::new();
        loop {
            match chars.next()? {
                '\\' => name.push(chars.next()?),
                c if c == quote => break,
                c => name.push(c),
            }
        }
        entries.push((index, name));
    }
    entries.sort_by_key(|(index, _)| *index);
    let in_order = entries.iter().enumerate().all(|(i, (index, _))| i == *index);
    (in_order && !entries.is_empty()).then(|| entries.into_iter().map(|(_, name)| name).collect())
}

fn parse_imgsz(literal: &str) -> Option<[u32; 2]> {
    let inner = literal
        .trim()
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    let sizes: Vec<u32> = inner.split(',').map(|s| s.trim().parse().ok()).collect::<Option<_>>()?;
    match sizes[..] {
        [side] => Some([side, side]),
        [height, width] => Some([height, width]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_literals() {
        let cases: [(&str, Option<&[&str]>); 7] = [
            ("{0: 'person', 1: 'bicycle'}", Some(&["person", "bicycle"])),
            ("{1: 'b', 0: 'a'}", Some(&["a", "b"])),
            (r#"{0: "it's", 1: 'say \'hi\''}"#, Some(&["it's", "say 'hi'"])),
            ("['cat', 'dog']", Some(&["cat", "dog"])),
            ("{0: 'a', 2: 'c'}", None), // gap
            ("{}", None),
            ("person, bicycle", None),
        ];
        for (literal, expected) in cases {
            let expected = expected.map(|names| names.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(parse_names(literal), expected, "{literal}");
        }
    }

    #[test]
    fn reads_ultralytics_props() {
        let meta = UltralyticsMetadata::from_props([
            ("names", "{0: 'a'}"),
            ("imgsz", "[320, 320]"),
            ("stride", "32"),
            ("task", "detect"),
        ]);
        assert_eq!(meta.names, Some(vec!["a".to_string()]));
        assert_eq!(meta.imgsz, Some([320, 320]));
        assert_eq!(meta.stride, Some(32));
        assert_eq!(
            UltralyticsMetadata::from_props([("imgsz", "640")]).imgsz,
            Some([640, 640])
        );
    }
}
