//! Signed reply addresses and unsubscribe links: what lets a stranger's email or click act for a
//! member only when tocsin itself handed out the address.
//!
//! A reply address is `reply+<ticket>.<member>.<expiry>.<mac>@<domain>`: everything the inbound
//! listener needs is in it, so no table of issued addresses has to be kept, and it stays under the
//! 64 characters RFC 5321 allows a local part. All of it is lowercase (hex and base 36) because mail
//! systems may change the case of a local part. The MAC is HMAC-SHA256 truncated to 80 bits.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::time::Timestamp;

/// Hex digits of MAC kept: 80 bits, plenty against forgery by guessing over SMTP.
const MAC_HEX: usize = 20;

/// Why an address or link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a tocsin reply address")]
    Malformed,
    #[error("the address is for another domain")]
    WrongDomain,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the address has expired")]
    Expired,
}

/// Who and what a valid reply address is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTarget {
    pub number: i64,
    pub member: String,
    pub expires: Timestamp,
}

#[derive(Clone)]
pub struct Tokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    pub fn new(secret: &str) -> Tokens {
        Tokens {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self, parts: &[&str]) -> String {
        // The key is any length; HMAC accepts every key, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for p in parts {
            mac.update(p.as_bytes());
            // A separator no part can contain, so ("ab","c") and ("a","bc") sign differently.
            mac.update(&[0]);
        }
        let mut hex = hex::encode(mac.finalize().into_bytes());
        hex.truncate(MAC_HEX);
        hex
    }

    fn matches(&self, parts: &[&str], given: &str) -> bool {
        let want = self.mac(parts);
        want.as_bytes().ct_eq(given.as_bytes()).into()
    }

    /// `reply+42.alice.t3k9xz.<mac>@in.example.com`.
    pub fn reply_address(
        &self,
        number: i64,
        member: &str,
        expires: Timestamp,
        domain: &str,
    ) -> String {
        let number = number.to_string();
        let exp = base36(expires.as_millis().max(0) as u64 / 1000);
        let mac = self.mac(&["reply", &number, member, &exp]);
        format!("reply+{number}.{member}.{exp}.{mac}@{domain}")
    }

    /// Checks a reply address: its domain, its signature, then its expiry.
    pub fn check_reply(
        &self,
        address: &str,
        domain: &str,
        now: Timestamp,
    ) -> Result<ReplyTarget, TokenError> {
        let address = address
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_ascii_lowercase();
        let (local, at) = address.rsplit_once('@').ok_or(TokenError::Malformed)?;
        if at != domain.to_ascii_lowercase() {
            return Err(TokenError::WrongDomain);
        }
        let token = local.strip_prefix("reply+").ok_or(TokenError::Malformed)?;
        let parts: Vec<&str> = token.split('.').collect();
        let [number, member, exp, mac] = parts[..] else {
            return Err(TokenError::Malformed);
        };
        if !self.matches(&["reply", number, member, exp], mac) {
            return Err(TokenError::BadSignature);
        }
        let number: i64 = number.parse().map_err(|_| TokenError::Malformed)?;
        let secs = u64::from_str_radix(exp, 36).map_err(|_| TokenError::Malformed)?;
        let expires = Timestamp::from_millis(secs.saturating_mul(1000).min(i64::MAX as u64) as i64);
        if expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(ReplyTarget {
            number,
            member: member.to_string(),
            expires,
        })
    }

    /// `alice.<mac>`: the path segment of a member's unsubscribe link. It does not expire: a link in a
    /// months-old email must still work.
    pub fn unsubscribe_token(&self, member: &str) -> String {
        format!("{member}.{}", self.mac(&["unsubscribe", member]))
    }

    /// The member an unsubscribe token is for, if tocsin signed it.
    pub fn check_unsubscribe(&self, token: &str) -> Option<String> {
        let (member, mac) = token.rsplit_once('.')?;
        self.matches(&["unsubscribe", member], mac)
            .then(|| member.to_string())
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOMAIN: &str = "in.tocsin.test";

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_millis(secs * 1000)
    }

    #[test]
    fn a_reply_address_round_trips_and_fits_a_local_part() {
        let tokens = Tokens::new("a-secret-of-some-length");
        let a = tokens.reply_address(42, "alice", t(2_000_000_000), DOMAIN);
        let local = a.split('@').next().unwrap();
        assert!(local.len() <= 64, "{a}");
        let target = tokens
            .check_reply(&a.to_uppercase(), DOMAIN, t(1_900_000_000))
            .unwrap();
        assert_eq!((target.number, target.member.as_str()), (42, "alice"));
    }

    #[test]
    fn expired_forged_and_foreign_addresses_are_refused() {
        let tokens = Tokens::new("a-secret-of-some-length");
        let a = tokens.reply_address(42, "alice", t(1000), DOMAIN);
        assert_eq!(
            tokens.check_reply(&a, DOMAIN, t(1000)),
            Err(TokenError::Expired)
        );
        let other = Tokens::new("another-secret-entirely");
        assert_eq!(
            other.check_reply(&a, DOMAIN, t(10)),
            Err(TokenError::BadSignature)
        );
        let bob = a.replace(".alice.", ".bob.");
        assert_eq!(
            tokens.check_reply(&bob, DOMAIN, t(10)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            tokens.check_reply(&a, "evil.test", t(10)),
            Err(TokenError::WrongDomain)
        );
        assert_eq!(
            tokens.check_reply("someone@in.tocsin.test", DOMAIN, t(10)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn unsubscribe_tokens_name_their_member_only_when_signed() {
        let tokens = Tokens::new("a-secret-of-some-length");
        let tok = tokens.unsubscribe_token("alice");
        assert_eq!(tokens.check_unsubscribe(&tok).as_deref(), Some("alice"));
        assert_eq!(tokens.check_unsubscribe(&tok.replace("alice", "bob")), None);
        assert_eq!(tokens.check_unsubscribe("alice"), None);
    }

    proptest! {
        #[test]
        fn any_changed_character_breaks_the_address(pos in 0usize..60, c in "[a-z0-9.+]") {
            let tokens = Tokens::new("a-secret-of-some-length");
            let a = tokens.reply_address(7, "bob", t(2_000_000_000), DOMAIN);
            let local = a.split('@').next().unwrap();
            let pos = pos % local.len();
            let mut changed: Vec<char> = local.chars().collect();
            let c = c.chars().next().unwrap();
            prop_assume!(changed[pos] != c);
            changed[pos] = c;
            let forged = format!("{}@{DOMAIN}", changed.into_iter().collect::<String>());
            prop_assert!(tokens.check_reply(&forged, DOMAIN, t(0)).is_err());
        }

        #[test]
        fn base36_round_trips(n in any::<u64>()) {
            prop_assert_eq!(u64::from_str_radix(&base36(n), 36).unwrap(), n);
        }
    }
}
