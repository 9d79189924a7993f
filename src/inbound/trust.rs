//! Whose `From` tocsin believes (`email.inbound.trust`).
//!
//! A reply address is a bearer token that sits in every copy of the email (forwards, archives, a
//! colleague's inbox), so the check that a reply comes from the member's own address is what stops
//! whoever holds it from acting as them. Anybody can write any `From`, though: it is worth something
//! only when a server tocsin trusts checked it. The policy says which:
//!
//! - `authserv_id`: the MX checked DMARC and said so in an `Authentication-Results` header
//!   (RFC 8601) under this authserv-id. Every DMARC result under that id must be `pass` (for the
//!   `From` domain, when it names one), and there must be at least one. RFC 8601 §5 has the MX
//!   delete headers claiming its id that came from outside; requiring all of them to pass still
//!   refuses a forged `pass` next to the MX's own `fail` from one that does not.
//! - `peers`: only these addresses may connect (checked before the greeting). That is what makes
//!   `authserv_id` safe when the listener can be reached without the MX; alone, it trusts whatever
//!   the listed relays pass on.
//!
//! Whatever the policy, a message is refused unless it has exactly one `From` header with exactly one
//! address, and a `Sender` header, if any, names the same address: otherwise which one would be the
//! member depends on which header a reader looks at.

use std::net::IpAddr;

use super::message::InboundMail;
use crate::config::TrustConfig;

/// The trust policy, ready to use. Without a configured one, nothing is trusted.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Lowercase.
    authserv_id: Option<String>,
    /// `None`: any address may connect.
    peers: Option<Vec<IpAddr>>,
    /// A policy was configured; without one every reply is refused.
    configured: bool,
}

impl Trust {
    pub fn from_config(config: Option<&TrustConfig>) -> Trust {
        let Some(config) = config else {
            return Trust::default();
        };
        Trust {
            authserv_id: config
                .authserv_id
                .as_ref()
                .map(|id| id.0.trim().to_ascii_lowercase()),
            peers: config
                .peers
                .as_ref()
                .map(|peers| peers.iter().map(|p| p.0.to_canonical()).collect()),
            configured: config.authserv_id.is_some() || config.peers.is_some(),
        }
    }

    /// Whether `ip` may connect at all.
    pub fn allows_peer(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.peers.as_ref().is_none_or(|peers| peers.contains(&ip))
    }

    /// The one address the message is from, when tocsin may believe it; otherwise why not.
    pub fn sender<'m>(&self, mail: &'m InboundMail) -> Result<&'m str, String> {
        if !self.configured {
            return Err("replies by email are not trusted here (no email.inbound.trust)".into());
        }
        let from = match (mail.from_headers, &mail.from_all[..], &mail.from) {
            (1, [_], Some(from)) => from.as_str(),
            (0, _, _) => return Err("the message has no From header".into()),
            (1, _, _) => return Err("the From header must name exactly one address".into()),
            (n, _, _) => return Err(format!("the message has {n} From headers")),
        };
        match (mail.sender_headers, &mail.sender_all[..]) {
            (0, _) => {}
            (1, [sender]) if sender == from => {}
            _ => return Err("the Sender header differs from From".into()),
        }
        if let Some(id) = &self.authserv_id {
            let domain = from.rsplit_once('@').map_or("", |(_, d)| d);
            dmarc_passed(&mail.auth_results, id, domain)?;
        }
        Ok(from)
    }
}

/// Checks the `Authentication-Results` values for a DMARC pass under `authserv_id` (lowercase) for
/// `domain`.
fn dmarc_passed(headers: &[String], authserv_id: &str, domain: &str) -> Result<(), String> {
    let mut passed = 0;
    for header in headers {
        let Some((id, results)) = parse(header) else {
            continue;
        };
        if id != authserv_id {
            continue;
        }
        for result in results.iter().filter(|r| r.method == "dmarc") {
            let for_domain = result
                .props
                .iter()
                .find(|(k, _)| k == "header.from")
                .is_none_or(|(_, v)| v.eq_ignore_ascii_case(domain));
            if result.result != "pass" || !for_domain {
                return Err(format!(
                    "DMARC did not pass for the From domain ({authserv_id} says dmarc={})",
                    result.result
                ));
            }
            passed += 1;
        }
    }
    if passed == 0 {
        return Err(format!(
            "no DMARC result from {authserv_id} (Authentication-Results)"
        ));
    }
    Ok(())
}

/// One `method=result property=value...` of an `Authentication-Results` header, lowercased.
#[derive(Debug, PartialEq, Eq)]
struct ResInfo {
    method: String,
    result: String,
    props: Vec<(String, String)>,
}

/// Parses an `Authentication-Results` value (RFC 8601 §2.2): the authserv-id (lowercased) and its
/// results. Comments are dropped, quoted strings kept whole. `None` when there is no authserv-id.
fn parse(value: &str) -> Option<(String, Vec<ResInfo>)> {
    let mut clauses = split_clauses(value).into_iter();
    // The authserv-id, perhaps followed by a version number.
    let id = clauses
        .next()?
        .split_whitespace()
        .next()?
        .to_ascii_lowercase();
    let mut results = Vec::new();
    for clause in clauses {
        let mut words = clause.split_whitespace();
        let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
            continue; // `none`, or not a result
        };
        // `method/version`
        let method = method.split('/').next().unwrap_or(method);
        let props = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim_matches('"').to_string()))
            .collect();
        results.push(ResInfo {
            method: method.to_ascii_lowercase(),
            result: result.trim_matches('"').to_ascii_lowercase(),
            props,
        });
    }
    Some((id, results))
}

/// Splits at `;` outside quotes and comments, with comments (nested, with `\` escapes) removed.
fn split_clauses(value: &str) -> Vec<String> {
    let mut clauses = vec![String::new()];
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        let current = clauses.last_mut().unwrap_or_else(|| unreachable!());
        if escaped {
            escaped = false;
            if depth == 0 {
                current.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    current.push(' ');
                }
            }
            ';' if !quoted && depth == 0 => clauses.push(String::new()),
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    clauses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn mail(headers: &str) -> InboundMail {
        let raw = format!("{headers}Subject: s\n\nhello\n").replace('\n', "\r\n");
        super::super::message::read(raw.as_bytes()).expect("parses")
    }

    fn policy(authserv_id: Option<&str>, peers: Option<&[&str]>) -> Trust {
        Trust::from_config(Some(&TrustConfig {
            authserv_id: authserv_id.map(|s| Env(s.to_string())),
            peers: peers.map(|p| p.iter().map(|s| Env(s.parse().unwrap())).collect()),
        }))
    }

    #[test]
    fn without_a_policy_nobody_is_believed() {
        let m = mail("From: alice@example.org\n");
        assert!(Trust::from_config(None).sender(&m).is_err());
        assert!(Trust::from_config(Some(&TrustConfig::default()))
            .sender(&m)
            .is_err());
    }

    #[test]
    fn one_from_one_address_and_a_matching_sender() {
        let t = policy(None, Some(&["10.0.0.5"]));
        assert_eq!(
            t.sender(&mail("From: Alice <Alice@Example.org>\n")),
            Ok("alice@example.org")
        );
        assert_eq!(
            t.sender(&mail(
                "From: alice@example.org\nSender: ALICE@example.org\n"
            )),
            Ok("alice@example.org")
        );
        for refused in [
            "Subject: x\n",
            "From: alice@example.org\nFrom: mallory@evil.example\n",
            "From: mallory@evil.example\nFrom: alice@example.org\n",
            "From: alice@example.org, mallory@evil.example\n",
            "From: team: alice@example.org, mallory@evil.example;\n",
            "From: nobody\n",
            "From: alice@example.org\nSender: mallory@evil.example\n",
            "From: alice@example.org\nSender: alice@example.org\nSender: mallory@evil.example\n",
            "From: alice@example.org\nSender: not an address\n",
        ] {
            assert!(t.sender(&mail(refused)).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn peers_are_compared_canonically() {
        let t = policy(None, Some(&["127.0.0.1", "2001:db8::1"]));
        assert!(t.allows_peer("127.0.0.1".parse().unwrap()));
        assert!(t.allows_peer("::ffff:127.0.0.1".parse().unwrap()));
        assert!(t.allows_peer("2001:db8:0::1".parse().unwrap()));
        assert!(!t.allows_peer("127.0.0.2".parse().unwrap()));
        assert!(policy(Some("mx.example.org"), None).allows_peer("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn dmarc_pass_from_the_named_authserv_id() {
        let t = policy(Some("MX.example.org"), None);
        let from = "From: alice@example.org\n";
        let ok = [
            "Authentication-Results: mx.example.org; dmarc=pass header.from=example.org\n",
            "Authentication-Results: mx.example.org 1; spf=pass smtp.mailfrom=example.org;\n dkim=pass (2048-bit key) header.d=example.org;\n dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=Example.org\n",
            // OpenDKIM and OpenDMARC each write their own header under the same id.
            "Authentication-Results: mx.example.org; dkim=pass header.d=example.org\nAuthentication-Results: mx.example.org; dmarc=pass\n",
            // Somebody else's verdicts do not count either way.
            "Authentication-Results: other.example; dmarc=fail\nAuthentication-Results: mx.example.org; dmarc=pass\n",
            "Authentication-Results: (comment; here) mx.example.org; dmarc/1=pass reason=\"a;b\" header.from=example.org\n",
        ];
        for headers in ok {
            let m = mail(&format!("{from}{headers}"));
            assert_eq!(t.sender(&m), Ok("alice@example.org"), "{headers:?}");
        }
        let refused = [
            "",
            "Authentication-Results: mx.example.org; none\n",
            "Authentication-Results: mx.example.org; dkim=pass header.d=example.org\n",
            "Authentication-Results: mx.example.org; dmarc=fail header.from=example.org\n",
            "Authentication-Results: mx.example.org; dmarc=none\n",
            "Authentication-Results: mx.example.org; dmarc=pass header.from=evil.example\n",
            "Authentication-Results: mx.example.org.evil.example; dmarc=pass\n",
            "Authentication-Results: other.example; dmarc=pass\n",
            // A forged pass next to the MX's own fail.
            "Authentication-Results: mx.example.org; dmarc=fail\nAuthentication-Results: mx.example.org; dmarc=pass\n",
            "Authentication-Results: mx.example.org; x=y (dmarc=pass)\n",
            "Authentication-Results: mx.example.org; foo=bar \"; dmarc=pass\"\n",
        ];
        for headers in refused {
            let m = mail(&format!("{from}{headers}"));
            assert!(t.sender(&m).is_err(), "{headers:?}");
        }
    }

    #[test]
    fn parse_never_panics_on_odd_input() {
        for s in [
            "",
            ";",
            "(((",
            "\\",
            "\"",
            "a; =; b=; =c",
            "a;(\\",
            "x; dmarc=pass (unterminated",
        ] {
            let _ = parse(s);
        }
        assert_eq!(parse("; dmarc=pass").map(|(id, _)| id), None);
    }
}
