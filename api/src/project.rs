//! Projects and their ontology (object classes): what `POST/GET/PATCH /api/projects` carry,
//! and the validation rules the server enforces and the browser form checks early.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest project name accepted, in characters.
pub const MAX_PROJECT_NAME_CHARS: usize = 120;
/// Longest class name accepted, in characters.
pub const MAX_CLASS_NAME_CHARS: usize = 64;
/// Longest teacher prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 500;
/// Most classes one project may have (COCO has 80, Objects365 has 365).
pub const MAX_CLASSES: usize = 1000;

/// A labeling project as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Server-assigned id, stable for the project's life.
    pub id: i64,
    /// Unique, trimmed display name.
    pub name: String,
    /// Classes in the project's order (the order YOLO export numbers them in).
    pub classes: Vec<ObjectClass>,
    /// How images without a fixed split are divided between train, val and test.
    pub split: SplitRatios,
    /// Seed of the deterministic split, so re-exports put each image in the same split.
    pub split_seed: u32,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// What the caller may do here (admins: owner), in answers to a signed-in caller; the page
    /// offers only what the role allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::Role>,
}

/// One object class of a project's ontology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClass {
    /// Stable id within the project; never reused, even after the class is deleted.
    pub id: u32,
    /// Unique (case-insensitively) within the project.
    pub name: String,
    /// Display colour, `#rrggbb`.
    pub color: String,
    /// Caption an open-vocabulary teacher is asked for (autodistill's `{"caption": "class"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// Percentages of images that go to each split; they add up to 100 and train and val are non-zero
/// (Ultralytics needs both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRatios {
    /// Share of images used for training, in percent.
    pub train_pct: u8,
    /// Share of images used for validation, in percent.
    pub val_pct: u8,
    /// Share of images held out for testing, in percent.
    pub test_pct: u8,
}

impl Default for SplitRatios {
    fn default() -> Self {
        Self {
            train_pct: 80,
            val_pct: 20,
            test_pct: 0,
        }
    }
}

/// A class as a client asks for it: only the name is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSpec {
    /// Existing class id when editing; absent for a new class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// Class name.
    pub name: String,
    /// Teacher prompt; empty means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// `#rrggbb`; a palette colour is chosen when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl ClassSpec {
    /// A new class with just a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            id: None,
            name: name.into(),
            prompt: None,
            color: None,
        }
    }
}

/// Body of `POST /api/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    /// Project name.
    pub name: String,
    /// Initial classes, in order.
    #[serde(default)]
    pub classes: Vec<ClassSpec>,
}

/// Body of `PATCH /api/projects/{pid}`: every field is optional and only given fields change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPatch {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The complete new class list, in order: entries with an `id` keep (and may rename) that
    /// class, entries without one are created, and classes left out are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<ClassSpec>>,
    /// New split ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitRatios>,
    /// New split seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u32>,
    /// Where the boxes of classes removed from `classes` go. Removing a class that has boxes
    /// without saying so is refused (`409 class_in_use`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_class_boxes: Vec<ClassRemoval>,
}

/// The fate of a removed class's boxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassRemoval {
    /// The class being removed.
    pub class_id: u32,
    /// Move its boxes to this (kept) class; `None` deletes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<u32>,
}

/// Why a project, class or split was refused. Each maps to a stable API error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    /// The project name is empty after trimming.
    EmptyProjectName,
    /// The project name is longer than [`MAX_PROJECT_NAME_CHARS`].
    ProjectNameTooLong,
    /// A class name is empty after trimming; carries its position (0-based).
    EmptyClassName {
        /// Position in the class list, 0-based.
        index: usize,
    },
    /// A class name is longer than [`MAX_CLASS_NAME_CHARS`].
    ClassNameTooLong {
        /// The name, as sent.
        name: String,
    },
    /// Two classes share a name (compared case-insensitively).
    DuplicateClassName {
        /// The name that appears twice.
        name: String,
    },
    /// More than [`MAX_CLASSES`] classes.
    TooManyClasses,
    /// A colour that is not `#rrggbb`.
    InvalidColor {
        /// The colour, as sent.
        color: String,
    },
    /// A prompt longer than [`MAX_PROMPT_CHARS`].
    PromptTooLong {
        /// The class whose prompt it is.
        name: String,
    },
    /// The same class id appears twice in one class list.
    DuplicateClassId {
        /// The repeated id.
        id: u32,
    },
    /// Split percentages that do not add up to 100, or leave train or val empty.
    InvalidSplit,
    /// A name containing control characters (newlines, tabs, NUL…).
    ControlCharacters,
}

impl ValidationError {
    /// Stable machine-readable code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyProjectName | Self::ProjectNameTooLong | Self::ControlCharacters => "invalid_name",
            Self::EmptyClassName { .. }
            | Self::ClassNameTooLong { .. }
            | Self::TooManyClasses
            | Self::InvalidColor { .. }
            | Self::PromptTooLong { .. }
            | Self::DuplicateClassId { .. } => "invalid_class",
            Self::DuplicateClassName { .. } => "duplicate_class_name",
            Self::InvalidSplit => "invalid_split",
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyProjectName => write!(f, "The project needs a name."),
            Self::ProjectNameTooLong => {
                write!(
                    f,
                    "The project name is longer than {MAX_PROJECT_NAME_CHARS} characters."
                )
            }
            Self::ControlCharacters => {
                write!(f, "Names cannot contain line breaks, tabs or other control characters.")
            }
            Self::EmptyClassName { index } => write!(f, "Class {} has no name.", index + 1),
            Self::ClassNameTooLong { name } => write!(
                f,
                "The class name \"{name}\" is longer than {MAX_CLASS_NAME_CHARS} characters."
            ),
            Self::DuplicateClassName { name } => {
                write!(f, "The class \"{name}\" is listed twice; class names must be unique.")
            }
            Self::TooManyClasses => write!(f, "A project can have at most {MAX_CLASSES} classes."),
            Self::InvalidColor { color } => {
                write!(f, "\"{color}\" is not a colour; use the form #rrggbb.")
            }
            Self::PromptTooLong { name } => write!(
                f,
                "The prompt of class \"{name}\" is longer than {MAX_PROMPT_CHARS} characters."
            ),
            Self::DuplicateClassId { id } => write!(f, "Class id {id} appears twice."),
            Self::InvalidSplit => write!(
                f,
                "Split percentages must add up to 100, with train and val both above 0."
            ),
        }
    }
}

impl std::error::Error for ValidationError {}

/// Trims a project name and checks it.
pub fn validate_project_name(name: &str) -> Result<String, ValidationError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ValidationError::EmptyProjectName);
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::ControlCharacters);
    }
    if name.chars().count() > MAX_PROJECT_NAME_CHARS {
        return Err(ValidationError::ProjectNameTooLong);
    }
    Ok(name.to_owned())
}

/// Trims and checks a class list: names present, short, free of control characters and unique
/// (case-insensitively, so "Car" and "car" cannot both exist), colours well-formed, ids not repeated.
/// Empty prompts become `None` and colours are lower-cased.
pub fn validate_classes(classes: &[ClassSpec]) -> Result<Vec<ClassSpec>, ValidationError> {
    if classes.len() > MAX_CLASSES {
        return Err(ValidationError::TooManyClasses);
    }
    let mut seen_names = HashSet::new();
    let mut seen_ids = HashSet::new();
    let mut out = Vec::with_capacity(classes.len());
    for (index, class) in classes.iter().enumerate() {
        let name = class.name.trim();
        if name.is_empty() {
            return Err(ValidationError::EmptyClassName { index });
        }
        if name.chars().any(char::is_control) {
            return Err(ValidationError::ControlCharacters);
        }
        if name.chars().count() > MAX_CLASS_NAME_CHARS {
            return Err(ValidationError::ClassNameTooLong { name: name.to_owned() });
        }
        if !seen_names.insert(name.to_lowercase()) {
            return Err(ValidationError::DuplicateClassName { name: name.to_owned() });
        }
        if let Some(id) = class.id
            && !seen_ids.insert(id)
        {
            return Err(ValidationError::DuplicateClassId { id });
        }
        let color = match &class.color {
            Some(color) if !is_hex_color(color) => {
                return Err(ValidationError::InvalidColor { color: color.clone() });
            }
            Some(color) => Some(color.to_ascii_lowercase()),
            None => None,
        };
        let prompt = class.prompt.as_deref().map(str::trim).filter(|p| !p.is_empty());
        if prompt.is_some_and(|p| p.chars().count() > MAX_PROMPT_CHARS) {
            return Err(ValidationError::PromptTooLong { name: name.to_owned() });
        }
        out.push(ClassSpec {
            id: class.id,
            name: name.to_owned(),
            prompt: prompt.map(str::to_owned),
            color,
        });
    }
    Ok(out)
}

impl NewProject {
    /// Returns the normalised request (trimmed names, lower-case colours) or the first problem.
    pub fn validate(&self) -> Result<NewProject, ValidationError> {
        Ok(NewProject {
            name: validate_project_name(&self.name)?,
            classes: validate_classes(&self.classes)?,
        })
    }
}

impl SplitRatios {
    /// Checks that the percentages add up to 100 and that train and val are both non-empty.
    pub fn validate(self) -> Result<Self, ValidationError> {
        let total = u16::from(self.train_pct) + u16::from(self.val_pct) + u16::from(self.test_pct);
        if total != 100 || self.train_pct == 0 || self.val_pct == 0 {
            return Err(ValidationError::InvalidSplit);
        }
        Ok(self)
    }
}

/// Splits what a person types into a class list: one class per comma or line, blanks dropped.
/// The "new project" form uses it so "car, person\ntruck" means three classes.
pub fn parse_class_list(text: &str) -> Vec<ClassSpec> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(ClassSpec::named)
        .collect()
}

/// Colours given to classes that have none, picked to stay distinguishable on photos and on
/// both light and dark themes.
const CLASS_PALETTE: [&str; 12] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990",
    "#dcbeff", "#9a6324",
];

/// The palette colour of the class with this id.
pub fn default_class_color(class_id: u32) -> &'static str {
    CLASS_PALETTE[class_id as usize % CLASS_PALETTE.len()]
}

fn is_hex_color(color: &str) -> bool {
    let bytes = color.as_bytes();
    bytes.len() == 7 && bytes[0] == b'#' && bytes[1..].iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[&str]) -> Vec<ClassSpec> {
        names.iter().map(|n| ClassSpec::named(*n)).collect()
    }

    #[test]
    fn project_names() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("birds", Ok("birds")),
            ("  Street scenes  ", Ok("Street scenes")),
            ("", Err("invalid_name")),
            ("   ", Err("invalid_name")),
            ("a\nb", Err("invalid_name")),
            ("tab\there", Err("invalid_name")),
        ];
        for (input, expected) in cases {
            let got = validate_project_name(input);
            match expected {
                Ok(name) => assert_eq!(got.as_deref(), Ok(*name), "input {input:?}"),
                Err(code) => assert_eq!(got.map_err(|e| e.code()), Err(*code), "input {input:?}"),
            }
        }
        let long = "x".repeat(MAX_PROJECT_NAME_CHARS + 1);
        assert_eq!(validate_project_name(&long), Err(ValidationError::ProjectNameTooLong));
        let longest = "é".repeat(MAX_PROJECT_NAME_CHARS);
        assert!(
            validate_project_name(&longest).is_ok(),
            "length counts characters, not bytes"
        );
    }

    /// Class names in, and the normalised names or the error code out.
    type ClassListCase = (&'static [&'static str], Result<&'static [&'static str], &'static str>);

    #[test]
    fn class_lists() {
        let cases: &[ClassListCase] = &[
            (&[], Ok(&[])),
            (&["car", " person "], Ok(&["car", "person"])),
            (&["car", "Car"], Err("duplicate_class_name")),
            (&["car", " car"], Err("duplicate_class_name")),
            (&["car", ""], Err("invalid_class")),
            (&["new\nline"], Err("invalid_name")),
        ];
        for (input, expected) in cases {
            let got = validate_classes(&classes(input));
            match expected {
                Ok(names) => {
                    let got: Vec<String> = got.unwrap_or_default().into_iter().map(|c| c.name).collect();
                    assert_eq!(got, *names, "input {input:?}");
                }
                Err(code) => assert_eq!(got.map_err(|e| e.code()), Err(*code), "input {input:?}"),
            }
        }
    }

    #[test]
    fn class_colours_prompts_and_ids() {
        let spec = |id, color: Option<&str>, prompt: Option<&str>| ClassSpec {
            id,
            name: format!("c{}", id.unwrap_or(99)),
            color: color.map(str::to_owned),
            prompt: prompt.map(str::to_owned),
        };
        let ok = validate_classes(&[spec(Some(1), Some("#A0B1C2"), Some("  a red car "))]);
        assert_eq!(
            ok,
            Ok(vec![ClassSpec {
                id: Some(1),
                name: "c1".into(),
                color: Some("#a0b1c2".into()),
                prompt: Some("a red car".into()),
            }])
        );
        assert_eq!(
            validate_classes(&[spec(None, None, Some("   "))]).map(|c| c[0].prompt.clone()),
            Ok(None)
        );
        for bad in ["red", "#12345", "#1234567", "#gggggg"] {
            assert_eq!(
                validate_classes(&[spec(None, Some(bad), None)]).map_err(|e| e.code()),
                Err("invalid_class"),
                "colour {bad}"
            );
        }
        let mut twice = vec![spec(Some(3), None, None), spec(Some(3), None, None)];
        twice[1].name = "other".into();
        assert_eq!(
            validate_classes(&twice),
            Err(ValidationError::DuplicateClassId { id: 3 })
        );
    }

    #[test]
    fn split_ratios() {
        let cases = [
            ((80, 20, 0), true),
            ((70, 20, 10), true),
            ((100, 0, 0), false),
            ((0, 100, 0), false),
            ((80, 10, 0), false),
            ((200, 50, 6), false),
        ];
        for ((train_pct, val_pct, test_pct), valid) in cases {
            let split = SplitRatios {
                train_pct,
                val_pct,
                test_pct,
            };
            assert_eq!(split.validate().is_ok(), valid, "{split:?}");
        }
        assert!(SplitRatios::default().validate().is_ok());
    }

    #[test]
    fn class_list_text() {
        let names = |text: &str| parse_class_list(text).into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names("car, person\ntruck"), ["car", "person", "truck"]);
        assert_eq!(names(" , \n\n"), Vec::<String>::new());
        assert_eq!(names("traffic light"), ["traffic light"]);
    }

    #[test]
    fn wire_shapes() {
        let body: NewProject = serde_json::from_str(r#"{"name":"p","classes":[{"name":"car","prompt":"a car"}]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body.classes[0].prompt.as_deref(), Some("a car"));
        let body: NewProject = serde_json::from_str(r#"{"name":"p"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(body.classes.is_empty(), "classes may be omitted");
        let error = serde_json::to_value(crate::ErrorBody::new("not_found", "No such project."))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            error,
            serde_json::json!({"error": {"code": "not_found", "message": "No such project."}})
        );
    }

    #[test]
    fn palette_cycles() {
        assert_eq!(default_class_color(0), "#e6194b");
        assert_eq!(default_class_color(12), default_class_color(0));
    }
}
