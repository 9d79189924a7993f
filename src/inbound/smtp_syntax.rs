//! The SMTP server's wire syntax, kept apart from its sessions: reply lines, enhanced status codes,
//! `MAIL`/`RCPT` paths, and the line-end watch that keeps DATA's end unambiguous.

use super::MAX_PATH;

/// One reply line. A handler's text must not be able to end the reply early and inject another one,
/// so control characters become spaces.
pub(super) fn reply_line(code: u16, status: &str, text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if status.is_empty() || !is_enhanced_status(status) {
        format!("{code} {text}\r\n")
    } else {
        format!("{code} {status} {text}\r\n")
    }
}

/// "x.y.z" with digits (RFC 3463), so a handler's status cannot break the reply line.
pub(super) fn is_enhanced_status(status: &str) -> bool {
    let parts: Vec<&str> = status.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Watches the line ends of DATA across pieces: remembers whether it saw a CR or LF that is not part
/// of a CRLF pair.
#[derive(Debug, Default)]
pub(super) struct LineEnds {
    /// The last byte of the previous piece.
    last: u8,
    /// A bare CR or LF was seen.
    pub(super) bare: bool,
}

impl LineEnds {
    /// Scans a piece; returns whether it ends in a CRLF (its CR may have ended the previous piece).
    pub(super) fn scan(&mut self, piece: &[u8]) -> bool {
        let mut prev = self.last;
        for &b in piece {
            if (b == b'\n' && prev != b'\r') || (prev == b'\r' && b != b'\n') {
                self.bare = true;
            }
            prev = b;
        }
        let crlf = piece.last() == Some(&b'\n') && {
            let before = if piece.len() >= 2 {
                piece[piece.len() - 2]
            } else {
                self.last
            };
            before == b'\r'
        };
        self.last = prev;
        crlf
    }
}

pub(super) fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses `FROM:<path> PARAM...` (or `TO:`), returning the address without brackets and the
/// parameters. Lenient where real clients are (a space after the colon, missing brackets), strict where
/// it matters (no whitespace or control characters in the address, RFC 5321's length limit).
pub(super) fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg.get(keyword.len()..)?.trim_start();
    let (path, params) = match rest.strip_prefix('<') {
        Some(inner) => {
            let end = inner.find('>')?;
            (&inner[..end], &inner[end + 1..])
        }
        None => match rest.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        },
    };
    if !params.is_empty() && !params.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    // RFC 5321 §4.1.2 allows an obsolete source route, `<@a,@b:user@c>`; only the mailbox counts.
    let path = match path.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => path,
    };
    if path.len() > MAX_PATH
        || path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    {
        return None;
    }
    Some((path, params.split_ascii_whitespace().collect()))
}
