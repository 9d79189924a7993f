//! Reading an inbound email: who sent it, its subject, its body as plain text, and whether a machine
//! sent it.
//!
//! The reply's body is taken from the text/plain part when there is one. Clients that send HTML only
//! (Outlook, some webmails) get our own HTML-to-text conversion (`inbound::html`). Parsing is CPU
//! work on untrusted input: callers run it off the async runtime (`spawn_blocking`).
//!
//! It also reads what the sender checks need: every `From` and `Sender` address (a message with two
//! `From` headers must not be taken for the last one's), the Message-ID and the
//! `Authentication-Results` headers.
//!
//! `auto_submitted` flags mail that no person wrote (autoreplies, vacation notices, list traffic,
//! bounces), which must never become a note or, worse, an `ack`.

use mail_parser::{HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use super::html::html_to_text;

/// An inbound email, reduced to what reply-by-email needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMail {
    /// The From header's address, lowercased; `None` unless there is exactly one `From` header with
    /// exactly one address.
    pub from: Option<String>,
    /// Every address in every `From` header, lowercased, and how many `From` headers there are.
    pub from_all: Vec<String>,
    pub from_headers: usize,
    /// The same for `Sender` (RFC 5322 §3.6.2: who sent it on the author's behalf).
    pub sender_all: Vec<String>,
    pub sender_headers: usize,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// Every `Authentication-Results` header's value, unfolded, top (latest) first.
    pub auth_results: Vec<String>,
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
    let (from_headers, from_all) = addresses(&message, HeaderName::From);
    let (sender_headers, sender_all) = addresses(&message, HeaderName::Sender);
    let from = match &from_all[..] {
        [one] if from_headers == 1 => Some(one.clone()),
        _ => None,
    };
    let subject = message.subject().unwrap_or_default().trim().to_string();
    let message_id = message
        .message_id()
        .map(|id| id.trim().trim_matches(['<', '>']).to_string())
        .filter(|id| !id.is_empty());
    let auth_results = raw_headers(&message, "Authentication-Results")
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Some(InboundMail {
        from,
        from_all,
        from_headers,
        sender_all,
        sender_headers,
        message_id,
        auth_results,
        subject,
        text: body_text(&message),
        auto_submitted: is_auto_submitted(&message),
    })
}

/// How many headers named `name` there are, and every address in them (lowercased; groups
/// flattened). A header that holds no readable address adds none.
fn addresses(message: &Message<'_>, name: HeaderName<'static>) -> (usize, Vec<String>) {
    let mut headers = 0;
    let mut out = Vec::new();
    for value in message.header_values(name) {
        headers += 1;
        if let HeaderValue::Address(address) = value {
            out.extend(
                address
                    .iter()
                    .filter_map(|addr| addr.address())
                    .map(|a| a.trim().to_lowercase())
                    .filter(|a| !a.is_empty()),
            );
        }
    }
    (headers, out)
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
    fn every_from_and_sender_address_is_seen() {
        let mail = simple("From: Mallory <mallory@evil.example>\n");
        assert_eq!(mail.from, None, "two From headers: neither is the sender");
        assert_eq!(mail.from_headers, 2);
        assert_eq!(mail.from_all, ["a@b.example", "mallory@evil.example"]);
        let raw = "From: a@b.example, c@d.example\nSender: S <S@B.example>\nMessage-ID: <x1@b.example>\n\
                   Authentication-Results: mx.example.org;\n  dmarc=pass header.from=b.example\n\nhi\n";
        let mail = read(&crlf(raw)).unwrap();
        assert_eq!(mail.from, None, "two authors in one From");
        assert_eq!(mail.from_all.len(), 2);
        assert_eq!(
            (mail.sender_headers, &mail.sender_all[..]),
            (1, &["s@b.example".to_string()][..])
        );
        assert_eq!(mail.message_id.as_deref(), Some("x1@b.example"));
        assert_eq!(
            mail.auth_results,
            ["mx.example.org; dmarc=pass header.from=b.example"]
        );
        assert_eq!(simple("").from.as_deref(), Some("a@b.example"));
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
    }
}
