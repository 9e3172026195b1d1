//! The media type (`Content-Type`) of a file, by its extension.
//!
//! One table answers: the types given on the command line first (`--mime-types FILE`,
//! then `--mime EXT=TYPE`), then the built-in types of the most common static files,
//! then `mime_guess`'s table; `application/octet-stream` when none knows the extension.
//! An extension is what follows a `.` of the file name, compared without regard to
//! case; given ones may hold dots themselves (`tar.gz`), and the longest that matches
//! wins; the built-in tables see what follows the last `.`. Textual types (`text/*`,
//! JavaScript, JSON, SVG) get `charset=utf-8`.
//!
//! The file format is that of `/etc/mime.types`: one media type per line followed by
//! the extensions that have it, separated by spaces or tabs; `#` starts a comment;
//! blank lines and lines with a type but no extension are allowed (`/etc/mime.types`
//! itself can be loaded):
//!
//! ```text
//! # type             extensions
//! text/markdown      md markdown
//! application/wasm   wasm
//! ```
//!
//! A later entry for an extension replaces an earlier one.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// A table of media types by extension, on top of the built-in ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaTypes {
    /// Lower-case extension to media type.
    overrides: BTreeMap<Box<[u8]>, Box<str>>,
}

/// Why a mapping was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not `type/subtype` made of token characters.
    #[error("{0:?} is not a media type (type/subtype)")]
    Type(String),
    /// Empty, holding `/` or another character that is not a token character, or
    /// with an empty part between dots (after an optional leading one).
    #[error("{0:?} is not a file-name extension")]
    Extension(String),
    /// A `--mime` value without `=`.
    #[error("{0:?} is not EXT=TYPE")]
    NotAPair(String),
}

/// Why the media types of the command line could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MediaTypesError {
    /// A `--mime` mapping is malformed.
    #[error("--mime: {0}")]
    Flag(Malformed),
    /// The file could not be read (or is not UTF-8).
    #[error("--mime-types {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: io::Error,
    },
    /// A line is malformed.
    #[error("--mime-types {}, line {line}: {problem}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: Malformed,
    },
}

impl MediaTypes {
    /// Files ending in `.ext` have `media_type` (`ext` may start with a `.`).
    pub fn insert(&mut self, ext: &str, media_type: &str) -> Result<(), Malformed> {
        let ext = ext.strip_prefix('.').unwrap_or(ext);
        if ext
            .split('.')
            .any(|part| part.is_empty() || !part.bytes().all(is_token))
        {
            return Err(Malformed::Extension(ext.to_string()));
        }
        if !is_media_type(media_type) {
            return Err(Malformed::Type(media_type.to_string()));
        }
        self.overrides.insert(
            ext.to_ascii_lowercase().into_bytes().into(),
            media_type.into(),
        );
        Ok(())
    }

    /// Adds every mapping of `text`, in the `/etc/mime.types` format; on error, the
    /// number (from 1) of the first malformed line.
    pub fn parse(&mut self, text: &str) -> Result<(), (usize, Malformed)> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split_once('#').map_or(line, |(before, _)| before);
            let mut words = line.split_ascii_whitespace();
            let Some(media_type) = words.next() else {
                continue;
            };
            if !is_media_type(media_type) {
                return Err((i + 1, Malformed::Type(media_type.to_string())));
            }
            for ext in words {
                self.insert(ext, media_type).map_err(|e| (i + 1, e))?;
            }
        }
        Ok(())
    }

    /// Adds every mapping of the file at `path` (see [`MediaTypes::parse`]).
    pub fn read_file(&mut self, path: &Path) -> Result<(), MediaTypesError> {
        let text = std::fs::read_to_string(path).map_err(|error| MediaTypesError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        self.parse(&text)
            .map_err(|(line, problem)| MediaTypesError::Malformed {
                path: path.to_path_buf(),
                line,
                problem,
            })
    }

    /// The media type of a file named `name`, and whether to add `charset=utf-8`.
    pub fn content_type(&self, name: &[u8]) -> (&str, bool) {
        if !self.overrides.is_empty() {
            let lower = name.to_ascii_lowercase();
            // Longest extension first.
            let given = (0..lower.len())
                .filter(|&i| lower[i] == b'.')
                .find_map(|i| self.overrides.get(&lower[i + 1..]));
            if let Some(t) = given {
                return (t, is_textual(t));
            }
        }
        let ext = match name.iter().rposition(|&b| b == b'.') {
            Some(i) if i + 1 < name.len() => &name[i + 1..],
            _ => return ("application/octet-stream", false),
        };
        if let Some(known) = common_type(ext) {
            return known;
        }
        let Ok(ext) = std::str::from_utf8(ext) else {
            return ("application/octet-stream", false);
        };
        match mime_guess::from_ext(ext).first_raw() {
            Some(mime) => (mime, is_textual(mime)),
            None => ("application/octet-stream", false),
        }
    }
}

/// Parses a `--mime` value, `EXT=TYPE`.
pub fn parse_pair(value: &str) -> Result<(String, String), Malformed> {
    let (ext, media_type) = value
        .split_once('=')
        .ok_or_else(|| Malformed::NotAPair(value.to_string()))?;
    // Checked now, so that a bad flag is reported as such.
    MediaTypes::default().insert(ext, media_type)?;
    Ok((ext.to_string(), media_type.to_string()))
}

/// Whether a text body of this type gets `charset=utf-8`.
fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript" | "application/json" | "image/svg+xml"
        )
}

/// `type/subtype`, both RFC 9110 tokens.
fn is_media_type(s: &str) -> bool {
    s.split_once('/').is_some_and(|(t, sub)| {
        !t.is_empty() && !sub.is_empty() && t.bytes().chain(sub.bytes()).all(is_token)
    })
}

/// An RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The types of the most common static-file extensions, without `mime_guess`'s
/// table search (the same answers; a test checks they agree).
fn common_type(ext: &[u8]) -> Option<(&'static str, bool)> {
    let mut lower = [0u8; 5];
    let lower = lower.get_mut(..ext.len())?;
    for (l, e) in lower.iter_mut().zip(ext) {
        *l = e.to_ascii_lowercase();
    }
    Some(match &*lower {
        b"html" | b"htm" => ("text/html", true),
        b"css" => ("text/css", true),
        b"txt" => ("text/plain", true),
        b"js" => ("text/javascript", true),
        b"json" => ("application/json", true),
        b"svg" => ("image/svg+xml", true),
        b"png" => ("image/png", false),
        b"jpg" | b"jpeg" => ("image/jpeg", false),
        b"gif" => ("image/gif", false),
        b"webp" => ("image/webp", false),
        b"ico" => ("image/x-icon", false),
        b"woff2" => ("font/woff2", false),
        b"pdf" => ("application/pdf", false),
        b"wasm" => ("application/wasm", false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_types() {
        let t = MediaTypes::default();
        assert_eq!(t.content_type(b"index.html"), ("text/html", true));
        assert_eq!(t.content_type(b"style.css"), ("text/css", true));
        assert!(t.content_type(b"app.js").1);
        assert_eq!(t.content_type(b"img.png"), ("image/png", false));
        assert_eq!(
            t.content_type(b"data.bin"),
            ("application/octet-stream", false)
        );
        assert_eq!(
            t.content_type(b"noext"),
            ("application/octet-stream", false)
        );
        assert_eq!(
            t.content_type(b"trailing."),
            ("application/octet-stream", false)
        );
        assert_eq!(
            t.content_type(b"x.\xff"),
            ("application/octet-stream", false)
        );
        assert_eq!(t.content_type(b"README.TXT"), ("text/plain", true));
        assert_eq!(t.content_type(b"a.tar.gz"), ("application/gzip", false));
    }

    #[test]
    fn common_types_agree_with_mime_guess() {
        for ext in [
            "html", "htm", "css", "txt", "js", "json", "svg", "png", "jpg", "jpeg", "gif", "webp",
            "ico", "woff2", "pdf", "wasm", "HTML", "Css",
        ] {
            let (fast, _) = common_type(ext.as_bytes()).unwrap();
            assert_eq!(Some(fast), mime_guess::from_ext(ext).first_raw(), "{ext}");
        }
        assert_eq!(common_type(b"toolong"), None);
        assert_eq!(common_type(b"md"), None);
    }

    #[test]
    fn overrides_come_first_and_ignore_case() {
        let mut t = MediaTypes::default();
        t.insert("md", "text/markdown").unwrap();
        t.insert(".JS", "application/javascript").unwrap();
        t.insert("bin", "application/x-custom").unwrap();
        assert_eq!(t.content_type(b"README.MD"), ("text/markdown", true));
        assert_eq!(t.content_type(b"a.js"), ("application/javascript", true));
        assert_eq!(t.content_type(b"a.bin"), ("application/x-custom", false));
        assert_eq!(t.content_type(b"a.css"), ("text/css", true));
        t.insert("md", "text/x-markdown").unwrap();
        assert_eq!(t.content_type(b"a.md"), ("text/x-markdown", true));
        // Extensions with dots: the longest match wins.
        t.insert("gz", "application/x-gz").unwrap();
        t.insert("tar.gz", "application/x-tgz").unwrap();
        assert_eq!(t.content_type(b"a.TAR.gz"), ("application/x-tgz", false));
        assert_eq!(t.content_type(b"a.b.gz"), ("application/x-gz", false));
        assert_eq!(t.content_type(b"tar.gz"), ("application/x-gz", false));
        assert_eq!(t.content_type(b".md"), ("text/x-markdown", true));
        for bad in ["", ".", "a..b", "a.", "a/b", "a b", "\u{e9}"] {
            assert!(t.insert(bad, "text/plain").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_file_format() {
        let mut t = MediaTypes::default();
        t.parse(
            "# comment\n\n  text/markdown\tmd  markdown # trailing\napplication/x-empty\n\
             image/avif avif\r\n",
        )
        .unwrap();
        assert_eq!(t.content_type(b"a.markdown"), ("text/markdown", true));
        assert_eq!(t.content_type(b"a.avif"), ("image/avif", false));
        let err = |text: &str| MediaTypes::default().parse(text).unwrap_err();
        assert_eq!(
            err("text/plain txt\nmarkdown md\n"),
            (2, Malformed::Type("markdown".into()))
        );
        assert_eq!(
            err("\n\ntext/plain a/b\n"),
            (3, Malformed::Extension("a/b".into()))
        );
        assert_eq!(
            err("text/plain tar..gz\n"),
            (1, Malformed::Extension("tar..gz".into()))
        );
        assert_eq!(err("text/ txt\n").0, 1);
        assert_eq!(err("text/pl\"ain txt\n").0, 1);
    }

    #[test]
    fn flag_values() {
        assert_eq!(
            parse_pair("md=text/markdown"),
            Ok(("md".into(), "text/markdown".into()))
        );
        assert_eq!(parse_pair("md"), Err(Malformed::NotAPair("md".into())));
        assert!(matches!(
            parse_pair("=text/plain"),
            Err(Malformed::Extension(_))
        ));
        assert!(matches!(parse_pair("md=markdown"), Err(Malformed::Type(_))));
        assert!(matches!(
            parse_pair("md=text/plain\r\nX: y"),
            Err(Malformed::Type(_))
        ));
    }
}
