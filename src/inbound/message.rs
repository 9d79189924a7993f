//! Reading an inbound email: who sent it, its subject, its body as plain text, and whether a machine
//! sent it.
//!
//! The reply's body is taken from the text/plain part when there is one. Clients that send HTML only
//! (Outlook, some webmails) get a small HTML-to-text conversion of our own rather than mail-parser's:
//! we must drop `<blockquote>` contents, because that is where HTML clients put the quoted original,
//! and the quote-stripping in `domain::reply` only sees `>` markers in plain text.
//!
//! `auto_submitted` flags mail that no person wrote (autoreplies, vacation notices, list traffic,
//! bounces), which must never become a note or, worse, an `ack`.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// An inbound email, reduced to what reply-by-email needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMail {
    /// The From header's address, lowercased.
    pub from: Option<String>,
    pub subject: String,
    /// The reply's body as plain text (still with quotes and signatures; see `domain::reply`).
    pub text: String,
    /// Auto-Submitted other than "no", Precedence bulk/junk/list, an empty Return-Path (a bounce) or a
    /// multipart/report (delivery and read reports).
    pub auto_submitted: bool,
}

/// Parses a whole message (headers and body, as received after DATA). `None` if it is not a message.
///
/// Note: `Return-Path` is written by the final delivery agent. When tocsin's own listener is that agent,
/// the caller may prepend `Return-Path: <envelope sender>` so a null sender (`<>`) is seen as a bounce.
pub fn read(data: &[u8]) -> Option<InboundMail> {
    let message = MessageParser::default().parse(data)?;
    let from = message
        .from()
        .and_then(|address| address.first())
        .and_then(|addr| addr.address())
        .map(|address| address.trim().to_lowercase())
        .filter(|address| !address.is_empty());
    let subject = message.subject().unwrap_or_default().trim().to_string();
    Some(InboundMail {
        from,
        subject,
        text: body_text(&message),
        auto_submitted: is_auto_submitted(&message),
    })
}

/// The text/plain parts of the body, or the HTML parts converted when there are none.
fn body_text(message: &Message<'_>) -> String {
    // mail-parser lists an HTML part under `text_body` when it has no text alternative, so look at
    // what each part is rather than at which list it is in.
    let plain: Vec<&str> = message
        .text_bodies()
        .filter_map(|part| match &part.body {
            PartType::Text(text) if is_plain(part) => Some(text.as_ref()),
            _ => None,
        })
        .collect();
    if !plain.is_empty() {
        return plain.join("\n").replace("\r\n", "\n");
    }
    let html: Vec<String> = message
        .html_bodies()
        .filter_map(|part| match &part.body {
            PartType::Html(html) => Some(html_to_text(html)),
            _ => None,
        })
        .collect();
    html.join("\n")
}

/// text/plain, or no Content-Type at all (RFC 2045's default).
fn is_plain<'x>(part: &impl MimeHeaders<'x>) -> bool {
    match part.content_type() {
        None => true,
        Some(ct) => {
            ct.c_type.eq_ignore_ascii_case("text")
                && ct
                    .c_subtype
                    .as_deref()
                    .is_none_or(|sub| sub.eq_ignore_ascii_case("plain"))
        }
    }
}

fn is_auto_submitted(message: &Message<'_>) -> bool {
    // RFC 3834: any value but "no" (case, parameters after ';' and comments do not matter).
    let auto = raw_headers(message, "Auto-Submitted").any(|value| {
        let keyword = value
            .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
            .next()
            .unwrap_or("");
        !keyword.is_empty() && !keyword.eq_ignore_ascii_case("no")
    });
    // The de facto marker of list and bulk mail, and of many autoresponders.
    let bulk = raw_headers(message, "Precedence").any(|value| {
        let value = value.trim();
        ["bulk", "junk", "list"]
            .iter()
            .any(|p| value.eq_ignore_ascii_case(p))
    });
    // A null reverse path (`<>`) is what bounces and other notifications are sent from (RFC 5321 §4.5.5).
    let bounce = raw_headers(message, "Return-Path").any(|value| {
        let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        compact.is_empty() || compact == "<>"
    });
    // RFC 6522: delivery status notifications and read receipts.
    let report = message.is_content_type("multipart", "report");
    auto || bulk || bounce || report
}

/// Raw values of a top-level header, every occurrence, trimmed.
fn raw_headers<'m>(message: &'m Message<'_>, name: &'m str) -> impl Iterator<Item = &'m str> + 'm {
    let raw = message.raw_message();
    message
        .root_part()
        .headers()
        .iter()
        .filter(move |header| header.name().eq_ignore_ascii_case(name))
        .filter_map(move |header| {
            let start = usize::try_from(header.offset_start()).ok()?;
            let end = usize::try_from(header.offset_end()).ok()?;
            std::str::from_utf8(raw.get(start..end)?).ok()
        })
        .map(str::trim)
}

/// Elements whose content is never text a person wrote.
const HIDDEN: &[&str] = &["head", "style", "script", "title", "template"];

/// Elements whose content is raw text, not markup.
const RAW_TEXT: &[&str] = &["style", "script"];

/// Elements that start and end a line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "tr",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "pre",
    "section",
    "article",
    "header",
    "footer",
    "center",
    "address",
    "blockquote",
];

/// HTML to plain text: tags dropped, entities decoded, whitespace collapsed as a browser would, line
/// breaks for `<br>` and block elements, `<blockquote>` (the quoted mail), `<head>`, `<style>` and
/// `<script>` dropped with their contents. Never fails: malformed HTML degrades to text.
pub(crate) fn html_to_text(html: &str) -> String {
    let html = html.replace("\r\n", "\n");
    let mut out = Output::default();
    let mut hidden = 0usize;
    let mut quoted = 0usize;
    let mut pre = 0usize;
    let mut rest = html.as_str();
    while let Some(first) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("<!--") {
            // Comments, including Outlook's `<!--[if mso]>…<![endif]-->` blocks.
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        if first == '<' {
            if let Some((tag, after)) = parse_tag(rest) {
                rest = after;
                let name = tag.name.as_str();
                if HIDDEN.contains(&name) {
                    hidden = step(hidden, tag.closing);
                    if !tag.closing && RAW_TEXT.contains(&name) {
                        // Script and style contents are not markup ("a<b" in a script opens no
                        // tag): jump to their end tag.
                        let end = rest.to_ascii_lowercase().find(&format!("</{name}"));
                        rest = end.map_or("", |i| &rest[i..]);
                    }
                } else if name == "blockquote" {
                    quoted = step(quoted, tag.closing);
                }
                if name == "pre" {
                    pre = step(pre, tag.closing);
                }
                if hidden == 0 && quoted == 0 {
                    if name == "br" {
                        out.newline();
                    } else if BLOCKS.contains(&name) {
                        out.end_line();
                    } else if name == "td" || name == "th" {
                        out.space();
                    }
                }
                continue;
            }
        }
        // Text up to the next '<' (a '<' that did not start a tag is text too).
        let from = first.len_utf8();
        let end = rest[from..].find('<').map_or(rest.len(), |i| i + from);
        let (run, after) = rest.split_at(end);
        if hidden == 0 && quoted == 0 {
            out.text(&decode_entities(run), pre > 0);
        }
        rest = after;
    }
    out.finish()
}

fn step(depth: usize, closing: bool) -> usize {
    if closing {
        depth.saturating_sub(1)
    } else {
        depth.saturating_add(1)
    }
}

struct Tag {
    /// Lowercased; empty for declarations (`<!DOCTYPE …>`, `<?xml …?>`).
    name: String,
    closing: bool,
}

/// Parses the tag at the start of `s` (which starts with '<'); returns it and the text after it.
/// `None` when the '<' does not open a tag (e.g. "a < b").
fn parse_tag(s: &str) -> Option<(Tag, &str)> {
    let body = &s[1..];
    let (closing, body) = match body.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let first = body.chars().next()?;
    let name = if first == '!' || first == '?' {
        String::new()
    } else if first.is_ascii_alphabetic() {
        body.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase()
    } else {
        return None;
    };
    // Find the closing '>', skipping quoted attribute values (which may contain '>').
    let mut quote: Option<u8> = None;
    for (i, b) in body.bytes().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if !name.is_empty() => quote = Some(b),
            (None, b'>') => return Some((Tag { name, closing }, &body[i + 1..])),
            _ => {}
        }
    }
    // Unterminated tag: the rest is inside it.
    Some((Tag { name, closing }, ""))
}

/// Accumulates text with HTML whitespace rules.
#[derive(Default)]
struct Output {
    text: String,
    /// Whitespace was seen since the last character written.
    pending_space: bool,
}

impl Output {
    fn text(&mut self, run: &str, pre: bool) {
        for c in run.chars() {
            if pre {
                self.text.push(if c == '\u{a0}' { ' ' } else { c });
                continue;
            }
            if c.is_whitespace() && c != '\u{a0}' {
                self.pending_space = true;
                continue;
            }
            if self.pending_space && !self.text.is_empty() && !self.text.ends_with('\n') {
                self.text.push(' ');
            }
            self.pending_space = false;
            // A non-breaking space is a space that does not collapse.
            self.text.push(if c == '\u{a0}' { ' ' } else { c });
        }
    }

    fn space(&mut self) {
        self.pending_space = true;
    }

    fn newline(&mut self) {
        self.text.push('\n');
        self.pending_space = false;
    }

    fn end_line(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.pending_space = false;
    }

    /// Trailing spaces off every line, at most one blank line in a row, no blank lines at the ends.
    fn finish(self) -> String {
        let mut result = String::with_capacity(self.text.len());
        let mut blank_run = 0;
        for line in self.text.split('\n') {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 || result.is_empty() {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            result.push_str(line);
            result.push('\n');
        }
        let trimmed = result.trim_end_matches('\n').len();
        result.truncate(trimmed);
        result
    }
}

/// Decodes character references: numeric (`&#39;`, `&#x27;`) and the named ones mail clients use.
/// Anything unrecognised is left as written.
fn decode_entities(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // References are short; don't scan far for a ';' that belongs to something else.
        let mut end = rest.len().min(33);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = &rest[1..end];
        let decoded = window.find(';').and_then(|semi| {
            let name = &rest[1..1 + semi];
            entity(name).map(|c| (c, semi + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.extend(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.into()
}

/// The character(s) a reference stands for (`None` when unknown). Soft hyphens and zero-width
/// joiners decode to nothing.
fn entity(name: &str) -> Option<Option<char>> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        let c = match code {
            0 => '\u{fffd}',
            _ => char::from_u32(code).unwrap_or('\u{fffd}'),
        };
        return Some(Some(c));
    }
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" | "lrm" | "rlm" => return Some(None),
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "deg" => '°',
        "times" => '×',
        "divide" => '÷',
        "plusmn" => '±',
        "sect" => '§',
        "para" => '¶',
        "iexcl" => '¡',
        "iquest" => '¿',
        "agrave" => 'à',
        "aacute" => 'á',
        "acirc" => 'â',
        "auml" => 'ä',
        "aring" => 'å',
        "aelig" => 'æ',
        "ccedil" => 'ç',
        "egrave" => 'è',
        "eacute" => 'é',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "igrave" => 'ì',
        "iacute" => 'í',
        "icirc" => 'î',
        "iuml" => 'ï',
        "ntilde" => 'ñ',
        "ograve" => 'ò',
        "oacute" => 'ó',
        "ocirc" => 'ô',
        "ouml" => 'ö',
        "oslash" => 'ø',
        "ugrave" => 'ù',
        "uacute" => 'ú',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "yacute" => 'ý',
        "yuml" => 'ÿ',
        "szlig" => 'ß',
        "Agrave" => 'À',
        "Aacute" => 'Á',
        "Acirc" => 'Â',
        "Auml" => 'Ä',
        "Aring" => 'Å',
        "Ccedil" => 'Ç',
        "Egrave" => 'È',
        "Eacute" => 'É',
        "Ecirc" => 'Ê',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "Ntilde" => 'Ñ',
        _ => return None,
    };
    Some(Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reply::{self, ReplyCommand};

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    const GMAIL: &str = r#"Return-Path: <bob@example.org>
MIME-Version: 1.0
Date: Tue, 5 Mar 2024 10:05:12 +0100
References: <t42@tocsin.example>
In-Reply-To: <t42.2.x7@tocsin.example>
Message-ID: <CAF=abc@mail.gmail.com>
Subject: Re: [tocsin T-42] disk full on db1
From: Bob Example <Bob@Example.ORG>
To: tocsin <reply+eyJ0Ijo0Mn0.c2ln@in.tocsin.example>
Content-Type: multipart/alternative; boundary="000000000000a1b2c3"

--000000000000a1b2c3
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

ack

Rotating the logs now, disk at 97% =E2=80=94 will report back.

On Tue, Mar 5, 2024 at 10:02=E2=80=AFAM tocsin <reply+eyJ0Ijo0Mn0.c2ln@in.t=
ocsin.example> wrote:

> [tocsin T-42] disk full on db1
> Severity: critical
>
> Reply "ack" to acknowledge.
>

--000000000000a1b2c3
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<div dir=3D"ltr">ack<div><br></div><div>Rotating the logs now, disk at 97% =
=E2=80=94 will report back.</div></div><br><div class=3D"gmail_quote"><div =
dir=3D"ltr" class=3D"gmail_attr">On Tue, Mar 5, 2024 at 10:02=E2=80=AFAM toc=
sin &lt;reply+eyJ0Ijo0Mn0.c2ln@in.tocsin.example&gt; wrote:<br></div><blockq=
uote class=3D"gmail_quote" style=3D"margin:0px 0px 0px 0.8ex">[tocsin T-42] =
disk full on db1</blockquote></div>

--000000000000a1b2c3--
"#;

    #[test]
    fn gmail_multipart_alternative_quoted_printable() {
        let mail = read(&crlf(GMAIL)).expect("parses");
        assert_eq!(mail.from.as_deref(), Some("bob@example.org"));
        assert_eq!(mail.subject, "Re: [tocsin T-42] disk full on db1");
        assert!(!mail.auto_submitted);
        // The text/plain part is used, decoded.
        assert!(mail
            .text
            .starts_with("ack\n\nRotating the logs now, disk at 97% — will report back.\n"));
        assert!(mail.text.contains("> Severity: critical"));
        assert!(!mail.text.contains('\r'));
        let r = reply::parse(&mail.text);
        assert_eq!(r.command, Some(ReplyCommand::Ack));
        assert_eq!(
            r.text,
            "Rotating the logs now, disk at 97% — will report back."
        );
    }

    const OUTLOOK: &str = r#"From: "Smith, Alice" <alice.smith@corp.example>
To: tocsin <reply+eyJ0Ijo0Mn0.c2ln@in.tocsin.example>
Subject: RE: [tocsin T-42] disk full on db1
Thread-Topic: [tocsin T-42] disk full on db1
Date: Tue, 5 Mar 2024 09:07:44 +0000
Message-ID: <DB9PR01MB1234@DB9PR01MB1234.eurprd01.prod.outlook.com>
Content-Language: en-US
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable
MIME-Version: 1.0

<html xmlns:o=3D"urn:schemas-microsoft-com:office:office">
<head>
<meta http-equiv=3D"Content-Type" content=3D"text/html; charset=3Diso-8859-=
1">
<style><!--
p.MsoNormal {margin:0cm; font-size:11.0pt;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext=3D"edit" spidmax=3D"1026" />
</xml><![endif]-->
</head>
<body lang=3D"EN-US">
<div class=3D"WordSection1">
<p class=3D"MsoNormal">Resolved.<o:p></o:p></p>
<p class=3D"MsoNormal"><o:p>&nbsp;</o:p></p>
<p class=3D"MsoNormal">Replaced the disk &amp; re-ran the job &#8211; it&#39;s=
 fine.<br>
Caf=E9 at 3?<o:p></o:p></p>
<p class=3D"MsoNormal"><o:p>&nbsp;</o:p></p>
<div style=3D"border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm =
0cm 0cm">
<p class=3D"MsoNormal"><b>From:</b> tocsin &lt;reply+eyJ0Ijo0Mn0.c2ln@in.to=
csin.example&gt;
<br>
<b>Sent:</b> Tuesday, March 5, 2024 10:02 AM<br>
<b>To:</b> Smith, Alice &lt;alice.smith@corp.example&gt;<br>
<b>Subject:</b> [tocsin T-42] disk full on db1<o:p></o:p></p>
</div>
<p class=3D"MsoNormal"><o:p>&nbsp;</o:p></p>
<p class=3D"MsoNormal">[tocsin T-42] disk full on db1<o:p></o:p></p>
</div>
</body>
</html>
"#;

    #[test]
    fn outlook_html_only() {
        let mail = read(&crlf(OUTLOOK)).expect("parses");
        assert_eq!(mail.from.as_deref(), Some("alice.smith@corp.example"));
        assert_eq!(mail.subject, "RE: [tocsin T-42] disk full on db1");
        assert!(!mail.auto_submitted);
        for markup in ["<b>", "<p", "o:p", "<br", "&nbsp;", "&lt;"] {
            assert!(!mail.text.contains(markup), "{markup} in {}", mail.text);
        }
        assert!(!mail.text.contains("MsoNormal"), "{}", mail.text);
        assert!(
            mail.text.starts_with(
                "Resolved.\n\nReplaced the disk & re-ran the job – it's fine.\nCafé at 3?\n\nFrom: tocsin <reply+"
            ),
            "{:?}",
            mail.text
        );
        let r = reply::parse(&mail.text);
        assert_eq!(r.command, Some(ReplyCommand::Resolve));
        assert_eq!(
            r.text,
            "Replaced the disk & re-ran the job – it's fine.\nCafé at 3?"
        );
    }

    const APPLE: &str = r#"From: Carol <carol@icloud.example>
Content-Type: multipart/alternative;
	boundary="Apple-Mail=_5F7E1B2C-0000-4000-8000-000000000001"
Mime-Version: 1.0 (Mac OS X Mail 16.0 \(3774.500.171.1.1\))
Subject: Re: [tocsin T-42] disk full on db1
Date: Tue, 5 Mar 2024 10:09:00 +0100
In-Reply-To: <t42.2.x7@tocsin.example>
To: tocsin <reply+eyJ0Ijo0Mn0.c2ln@in.tocsin.example>
References: <t42@tocsin.example>
Message-Id: <A1B2C3D4-0000-4000-8000-000000000002@icloud.example>

--Apple-Mail=_5F7E1B2C-0000-4000-8000-000000000001
Content-Transfer-Encoding: quoted-printable
Content-Type: text/plain;
	charset=utf-8

I=E2=80=99ll take this one.

> On 5 Mar 2024, at 10:02, tocsin <reply+eyJ0Ijo0Mn0.c2ln@in.tocsin.example>=
 wrote:
>=20
> [tocsin T-42] disk full on db1

--Apple-Mail=_5F7E1B2C-0000-4000-8000-000000000001
Content-Transfer-Encoding: quoted-printable
Content-Type: text/html;
	charset=utf-8

<html><head><meta http-equiv=3D"content-type" content=3D"text/html; charset=3D=
utf-8"></head><body dir=3D"auto">I=E2=80=99ll take this one.<br><div><br><bloc=
kquote type=3D"cite">On 5 Mar 2024, at 10:02, tocsin wrote:<br><br></blockquote></div></body></html>=

--Apple-Mail=_5F7E1B2C-0000-4000-8000-000000000001--
"#;

    #[test]
    fn apple_mail() {
        let mail = read(&crlf(APPLE)).expect("parses");
        assert_eq!(mail.from.as_deref(), Some("carol@icloud.example"));
        assert!(!mail.auto_submitted);
        let r = reply::parse(&mail.text);
        assert_eq!(r.command, None);
        assert_eq!(r.text, "I’ll take this one.");
    }

    const BOUNCE: &str = r#"Return-Path: <>
Date: Tue, 5 Mar 2024 10:02:05 +0100 (CET)
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: reply+eyJ0Ijo0Mn0.c2ln@in.tocsin.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="ABC123.1709629325/mx.example.org"

--ABC123.1709629325/mx.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<nobody@example.org>: user unknown

--ABC123.1709629325/mx.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1

--ABC123.1709629325/mx.example.org--
"#;

    #[test]
    fn bounce_is_auto_submitted() {
        let mail = read(&crlf(BOUNCE)).expect("parses");
        assert!(mail.auto_submitted);
        assert_eq!(mail.from.as_deref(), Some("mailer-daemon@mx.example.org"));
        assert!(mail.text.contains("user unknown"));
        assert!(!mail.text.contains("Reporting-MTA"));
    }

    fn simple(headers: &str) -> InboundMail {
        let raw = format!("From: a@b.example\n{headers}Subject: s\n\nhello\n");
        read(&crlf(&raw)).expect("parses")
    }

    #[test]
    fn auto_submitted_markers_each_alone() {
        assert!(!simple("").auto_submitted);
        assert!(!simple("Auto-Submitted: no\n").auto_submitted);
        assert!(!simple("Auto-Submitted: No (sent by a person)\n").auto_submitted);
        assert!(simple("Auto-Submitted: auto-replied\n").auto_submitted);
        assert!(simple("auto-submitted: Auto-Generated; owner-email=x@y\n").auto_submitted);
        assert!(simple("Precedence: bulk\n").auto_submitted);
        assert!(simple("Precedence: JUNK\n").auto_submitted);
        assert!(simple("Precedence: list\n").auto_submitted);
        assert!(!simple("Precedence: first-class\n").auto_submitted);
        assert!(simple("Return-Path: <>\n").auto_submitted);
        assert!(simple("Return-Path: < >\n").auto_submitted);
        assert!(!simple("Return-Path: <a@b.example>\n").auto_submitted);
    }

    #[test]
    fn plain_message_without_mime() {
        let mail = read(b"From: Dave <DAVE@x.example>\r\nSubject: =?UTF-8?Q?Re=3A_caf=C3=A9?=\r\n\r\nresolve\r\n").unwrap();
        assert_eq!(mail.from.as_deref(), Some("dave@x.example"));
        assert_eq!(mail.subject, "Re: café");
        assert_eq!(mail.text.trim_end(), "resolve");
    }

    #[test]
    fn missing_from_and_subject() {
        let mail = read(b"X-Other: 1\r\n\r\nbody\r\n").unwrap();
        assert_eq!(mail.from, None);
        assert_eq!(mail.subject, "");
    }

    #[test]
    fn garbage_does_not_panic() {
        for input in [
            &b""[..],
            b"\r\n\r\n",
            b"\xff\xfe\x00garbage",
            b"Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<b",
            b"Content-Type: text/html\r\n\r\n<blockquote><blockquote>a</blockquote>",
        ] {
            let _ = read(input);
        }
    }

    proptest::proptest! {
        #[test]
        fn read_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = read(&data);
        }

        #[test]
        fn html_to_text_never_panics(html in "(<[a-z/!]{0,3}|>|&#?[a-z0-9]{0,6};?|\\PC|[ \n])*") {
            let text = html_to_text(&html);
            proptest::prop_assert!(!text.ends_with('\n'));
        }
    }

    #[test]
    fn html_conversion() {
        assert_eq!(html_to_text("a<br>b<br/>c<BR />d"), "a\nb\nc\nd");
        assert_eq!(html_to_text("<p>one</p><p>two</p>"), "one\ntwo");
        assert_eq!(
            html_to_text("<div>x</div><div><br></div><div>y</div>"),
            "x\n\ny"
        );
        assert_eq!(
            html_to_text("  lots   of\n  space  &nbsp;here "),
            "lots of space  here"
        );
        assert_eq!(
            html_to_text(
                "keep<blockquote>drop <blockquote>this</blockquote> too</blockquote>after"
            ),
            "keep\nafter"
        );
        assert_eq!(
            html_to_text(
                "<a href=\"x?a=1&amp;b=>\">link</a> &lt;tag&gt; &#x263A; &#9731; &bogus; & a < b"
            ),
            "link <tag> ☺ ☃ &bogus; & a < b"
        );
        assert_eq!(
            html_to_text("<style>p{}</style><script>x<y</script>ok"),
            "ok"
        );
        assert_eq!(html_to_text("<pre>a  b\n  c</pre>"), "a  b\n  c");
        assert_eq!(html_to_text("a<!-- hidden -->b<!-- unterminated"), "ab");
        assert_eq!(html_to_text("x<img src=\"a.png\" alt=\"y\"/>z"), "xz");
        assert_eq!(html_to_text("tail <b"), "tail");
        assert_eq!(
            html_to_text("é<ü>&#0;&#xD800;&#99999999999;"),
            "é<ü>\u{fffd}\u{fffd}&#99999999999;"
        );
    }
}
