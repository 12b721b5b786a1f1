//! PostgreSQL password authentication for users named in the config file: cleartext
//! (`password`), `md5` and `scram-sha-256` (RFC 5802 / RFC 7677, as PostgreSQL implements it:
//! no channel binding, the user name taken from the startup packet). Users not in the config
//! file are trusted on loopback connections only.
//!
//! A SCRAM verifier (salt, StoredKey, ServerKey) is derived once, when the config is loaded,
//! so a login costs two HMACs on the shard rather than 4096 PBKDF2 rounds.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// PostgreSQL's default `scram_iterations`.
pub const SCRAM_ITERATIONS: u32 = 4096;
const SCRAM_SALT_BYTES: usize = 16;
const SCRAM_NONCE_BYTES: usize = 18;
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-256";
/// A client's SCRAM messages are short; anything longer is refused unread.
const SCRAM_MESSAGE_BYTES_MAX: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum PgAuthMethod {
    #[serde(rename = "password")]
    Password,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

/// A user who must authenticate.
#[derive(Clone, Debug)]
pub struct PgUser {
    pub name: String,
    pub method: PgAuthMethod,
    password: String,
    scram: ScramVerifier,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ScramVerifier {
    salt: [u8; SCRAM_SALT_BYTES],
    iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// 28P01: the password is wrong (PostgreSQL does not say more).
    #[error("password authentication failed for user \"{0}\"")]
    Failed(String),
    /// 08P01: the client's message is not what the exchange expects.
    #[error("malformed SCRAM message: {0}")]
    Protocol(&'static str),
}

impl PgUser {
    pub fn new(name: &str, method: PgAuthMethod, password: &str) -> std::io::Result<PgUser> {
        let mut salt = [0u8; SCRAM_SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(PgUser {
            name: name.to_string(),
            method,
            password: password.to_string(),
            scram: ScramVerifier::derive(password, salt, SCRAM_ITERATIONS),
        })
    }

    /// A cleartext PasswordMessage.
    pub fn check_cleartext(&self, given: &str) -> Result<(), AuthError> {
        if constant_time_eq(given.as_bytes(), self.password.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Failed(self.name.clone()))
        }
    }

    /// An md5 PasswordMessage: `"md5" + md5hex(md5hex(password + user) + salt)`.
    pub fn check_md5(&self, given: &str, salt: &[u8; 4]) -> Result<(), AuthError> {
        let expected = md5_response(&self.name, &self.password, salt);
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Failed(self.name.clone()))
        }
    }
}

pub fn md5_response(user: &str, password: &str, salt: &[u8; 4]) -> String {
    let inner = hex(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = Md5::digest([inner.as_bytes(), salt.as_slice()].concat());
    format!("md5{}", hex(&outer))
}

/// Random bytes for an md5 salt or a SCRAM nonce.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS random source does not fail on Linux once booted; a zero salt only weakens
    // replay protection for that one login.
    let _ = getrandom::fill(&mut out);
    out
}

impl ScramVerifier {
    fn derive(password: &str, salt: [u8; SCRAM_SALT_BYTES], iterations: u32) -> ScramVerifier {
        let salted = hi(password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        ScramVerifier {
            salt,
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }
}

/// The server side of one SCRAM-SHA-256 exchange, after the client-first message.
#[derive(Debug)]
pub struct ScramExchange {
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramExchange {
    /// Takes the SASLInitialResponse data (client-first message); returns the exchange and the
    /// server-first message to send in AuthenticationSASLContinue.
    pub fn start(user: &PgUser, client_first: &[u8]) -> Result<(ScramExchange, String), AuthError> {
        let text = scram_text(client_first)?;
        // gs2 header: "n,," (no channel binding) or "y,," (client supports it, server not).
        let bare = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
            .ok_or(AuthError::Protocol("unsupported channel binding"))?;
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
            .ok_or(AuthError::Protocol("missing client nonce"))?;
        let nonce = format!(
            "{client_nonce}{}",
            BASE64.encode(random_bytes::<SCRAM_NONCE_BYTES>())
        );
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(user.scram.salt),
            user.scram.iterations
        );
        Ok((
            ScramExchange {
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Takes the SASLResponse data (client-final message); returns the server-final message
    /// for AuthenticationSASLFinal when the proof is right.
    pub fn finish(&self, user: &PgUser, client_final: &[u8]) -> Result<String, AuthError> {
        let text = scram_text(client_final)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(AuthError::Protocol("missing proof"))?;
        let nonce = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or(AuthError::Protocol("missing nonce"))?;
        if nonce != self.nonce {
            return Err(AuthError::Protocol("nonce mismatch"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| AuthError::Protocol("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(AuthError::Failed(user.name.clone()));
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac(&user.scram.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        if !constant_time_eq(&stored, &user.scram.stored_key) {
            return Err(AuthError::Failed(user.name.clone()));
        }
        let server_signature = hmac(&user.scram.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

fn scram_text(bytes: &[u8]) -> Result<&str, AuthError> {
    if bytes.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(AuthError::Protocol("message too long"));
    }
    std::str::from_utf8(bytes).map_err(|_| AuthError::Protocol("not UTF-8"))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 5802's Hi(): PBKDF2-HMAC-SHA-256 with one output block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()].concat());
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example (user "user", password "pencil").
    #[test]
    fn rfc7677_exchange() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut user = PgUser::new("user", PgAuthMethod::ScramSha256, "pencil").unwrap();
        user.scram = ScramVerifier::derive("pencil", salt.try_into().unwrap(), 4096);
        let client_first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (mut exchange, _) = ScramExchange::start(&user, client_first).unwrap();
        // The RFC's server nonce, instead of a random one.
        exchange.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_string();
        exchange.server_first = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", exchange.nonce);
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let server_final = exchange.finish(&user, client_final).unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            exchange.finish(&user, wrong),
            Err(AuthError::Failed("user".to_string()))
        );
    }

    #[test]
    fn md5_matches_libpq() {
        // libpq: "md5" + md5(md5("secret" + "alice") + salt)
        let salt = [1, 2, 3, 4];
        let inner = hex(&Md5::digest(b"secretalice"));
        let expected = format!(
            "md5{}",
            hex(&Md5::digest([inner.as_bytes(), &salt].concat()))
        );
        assert_eq!(md5_response("alice", "secret", &salt), expected);
        let user = PgUser::new("alice", PgAuthMethod::Md5, "secret").unwrap();
        assert!(user.check_md5(&expected, &salt).is_ok());
        assert!(user.check_md5("md5wrong", &salt).is_err());
        assert!(user.check_cleartext("secret").is_ok());
        assert!(user.check_cleartext("Secret").is_err());
    }

    #[test]
    fn malformed_scram_messages_are_refused() {
        let user = PgUser::new("u", PgAuthMethod::ScramSha256, "p").unwrap();
        for bad in [
            &b"p=tls-server-end-point,,n=,r=abc"[..],
            b"n,,n=u",
            b"\xff\xfe",
            &[b'a'; 2000][..],
        ] {
            assert!(ScramExchange::start(&user, bad).is_err());
        }
        let (exchange, _) = ScramExchange::start(&user, b"n,,n=,r=abc").unwrap();
        assert!(exchange.finish(&user, b"c=biws,r=other,p=AAAA").is_err());
        assert!(exchange.finish(&user, b"no proof").is_err());
    }
}
