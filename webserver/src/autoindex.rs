//! HTML directory listings (`--autoindex`).

use crate::files::DirListing;
use crate::path::{encode_segment, RelPath};

/// Most entries listed; the rest are left out with a note.
pub const MAX_ENTRIES: usize = 10_000;

/// Appends an HTML listing of the directory `dir` to `out`. Names are shown lossily
/// as UTF-8 and HTML-escaped; links are percent-encoded from the raw bytes.
/// Directories come first, then files, each sorted by name.
pub fn render(dir: RelPath<'_>, listing: &mut DirListing, out: &mut Vec<u8>) {
    listing
        .entries
        .sort_unstable_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    let display = String::from_utf8_lossy(dir.as_bytes());
    out.extend_from_slice(
        b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of /",
    );
    escape_html(&display, out);
    if !dir.is_root() {
        out.push(b'/');
    }
    out.extend_from_slice(b"</title></head>\n<body><h1>Index of /");
    escape_html(&display, out);
    if !dir.is_root() {
        out.push(b'/');
    }
    out.extend_from_slice(b"</h1><hr><ul>\n");
    if !dir.is_root() {
        out.extend_from_slice(b"<li><a href=\"../\">../</a></li>\n");
    }
    for entry in &listing.entries {
        out.extend_from_slice(b"<li><a href=\"");
        // Relative links from a directory URL ending in '/'; "./" keeps a name with
        // a colon from reading as a URL scheme.
        out.extend_from_slice(b"./");
        encode_segment(&entry.name, out);
        if entry.is_dir {
            out.push(b'/');
        }
        out.extend_from_slice(b"\">");
        escape_html(&String::from_utf8_lossy(&entry.name), out);
        if entry.is_dir {
            out.push(b'/');
        }
        out.extend_from_slice(b"</a></li>\n");
    }
    out.extend_from_slice(b"</ul>");
    if listing.truncated {
        out.extend_from_slice(b"<p>(listing truncated)</p>");
    }
    out.extend_from_slice(b"<hr></body></html>\n");
}

/// Appends `text` with `& < > " '` escaped.
pub fn escape_html(text: &str, out: &mut Vec<u8>) {
    for b in text.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::DirEntry;

    fn entry(name: &[u8], is_dir: bool) -> DirEntry {
        DirEntry {
            name: name.to_vec(),
            is_dir,
        }
    }

    #[test]
    fn lists_escaped_and_sorted() {
        let mut listing = DirListing {
            entries: vec![
                entry(b"z.txt", false),
                entry(b"<script>alert(1)</script>", false),
                entry(b"sub", true),
                entry(b"a b&c.html", false),
                entry(b"\xff.bin", false),
            ],
            truncated: false,
        };
        let mut out = Vec::new();
        render(RelPath::new(b"docs").unwrap(), &mut listing, &mut out);
        let html = String::from_utf8(out).unwrap();
        assert!(html.contains("<title>Index of /docs/</title>"));
        assert!(html.contains("<a href=\"../\">../</a>"));
        assert!(html.contains("<a href=\"./sub/\">sub/</a>"));
        assert!(html.contains("<a href=\"./a%20b%26c.html\">a b&amp;c.html</a>"));
        assert!(html.contains(
            "<a href=\"./%3Cscript%3Ealert(1)%3C%2Fscript%3E\">&lt;script&gt;alert(1)&lt;/script&gt;</a>"
        ));
        assert!(html.contains("<a href=\"./%FF.bin\">\u{fffd}.bin</a>"));
        assert!(!html.contains("<script>"));
        let sub = html.find("sub/").unwrap();
        let a = html.find("a b&amp;c").unwrap();
        let z = html.find("z.txt").unwrap();
        assert!(sub < a && a < z);
        assert!(!html.contains("truncated"));
    }

    #[test]
    fn root_listing_has_no_parent_link() {
        let mut listing = DirListing {
            entries: vec![],
            truncated: true,
        };
        let mut out = Vec::new();
        render(RelPath::ROOT, &mut listing, &mut out);
        let html = String::from_utf8(out).unwrap();
        assert!(html.contains("<title>Index of /</title>"));
        assert!(!html.contains("../"));
        assert!(html.contains("(listing truncated)"));
    }

    #[test]
    fn escapes_quotes() {
        let mut out = Vec::new();
        escape_html("'\"", &mut out);
        assert_eq!(out, b"&#39;&quot;");
    }
}
