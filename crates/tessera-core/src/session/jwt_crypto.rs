//! jsonwebtoken's cryptography on ring, the library it used itself up to version 9, so
//! neither of the backends it bundles since is built: its RustCrypto one brings the `rsa`
//! crate (RUSTSEC-2023-0071, timing side channel, no fix), its aws-lc-rs one a second C
//! crypto library. ring already signs for rustls here; every algorithm jsonwebtoken 9
//! offered on ring is offered again, with the same ring primitives.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use ring::{digest, hmac};

/// The provider: what signs and verifies, and what reads public halves out of keys.
static RING: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_of_private_key,
        rsa_pub_components_from_public_key: rsa_components_of_public_key,
        ec_pub_components_from_private_key: ec_components_of_private_key,
        ed_pub_components_from_private_key: ed_component_of_private_key,
        compute_digest,
    },
};

/// Makes ring jsonwebtoken's cryptography in this process. jsonwebtoken has no default
/// without one of its bundled backends, so this runs before any JWT is signed or checked;
/// calls after the first change nothing.
pub(crate) fn install() {
    // An error only says that a provider is in place already: this one, installed before.
    let _ = RING.install_default();
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if key.family() != alg.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let alg = *alg;
    let bytes = key.as_bytes();
    Ok(match alg.family() {
        AlgorithmFamily::Hmac => Box::new(Hmac { alg, key: hmac::Key::new(hmac_algorithm(alg)?, bytes) }),
        AlgorithmFamily::Rsa => {
            let pair = sig::RsaKeyPair::from_der(bytes).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
            Box::new(RsaSigner { alg, pair, padding: rsa_padding(alg)? })
        }
        AlgorithmFamily::Ec => {
            let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa_signing(alg)?, bytes, &SystemRandom::new())
                .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
            Box::new(EcdsaSigner { alg, pair })
        }
        AlgorithmFamily::Ed => {
            let pair =
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes).map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Box::new(EdSigner { alg, pair })
        }
    })
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() != alg.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let alg = *alg;
    if alg.family() == AlgorithmFamily::Hmac {
        return Ok(Box::new(Hmac { alg, key: hmac::Key::new(hmac_algorithm(alg)?, key.try_get_as_bytes()?) }));
    }
    // Fails here, not at the first signature, for an algorithm ring does not verify.
    public_key_algorithm(alg)?;
    Ok(Box::new(PublicKeyVerifier { alg, key: key.clone() }))
}

fn hmac_algorithm(alg: Algorithm) -> Result<hmac::Algorithm> {
    Ok(match alg {
        Algorithm::HS256 => hmac::HMAC_SHA256,
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

fn rsa_padding(alg: Algorithm) -> Result<&'static dyn sig::RsaEncoding> {
    Ok(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

fn rsa_parameters(alg: Algorithm) -> Result<&'static sig::RsaParameters> {
    Ok(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

fn ecdsa_signing(alg: Algorithm) -> Result<&'static sig::EcdsaSigningAlgorithm> {
    Ok(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

/// How ring verifies `alg` with a public key (DER, an EC point, or an Ed25519 key).
fn public_key_algorithm(alg: Algorithm) -> Result<&'static dyn sig::VerificationAlgorithm> {
    Ok(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        other => rsa_parameters(other)?,
    })
}

/// An opaque failure: a JWT signature says no more than valid or not.
fn failed<E>(_: E) -> signature::Error {
    signature::Error::new()
}

/// HS256/384/512: signs, and verifies in constant time.
struct Hmac {
    alg: Algorithm,
    key: hmac::Key,
}

impl Signer<Vec<u8>> for Hmac {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.key, msg).as_ref().to_vec())
    }
}

impl JwtSigner for Hmac {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

impl Verifier<Vec<u8>> for Hmac {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        hmac::verify(&self.key, msg, signature).map_err(failed)
    }
}

impl JwtVerifier for Hmac {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

struct RsaSigner {
    alg: Algorithm,
    pair: sig::RsaKeyPair,
    padding: &'static dyn sig::RsaEncoding,
}

impl Signer<Vec<u8>> for RsaSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut out = vec![0; self.pair.public().modulus_len()];
        self.pair.sign(self.padding, &SystemRandom::new(), msg, &mut out).map_err(failed)?;
        Ok(out)
    }
}

impl JwtSigner for RsaSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

struct EcdsaSigner {
    alg: Algorithm,
    pair: sig::EcdsaKeyPair,
}

impl Signer<Vec<u8>> for EcdsaSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(self.pair.sign(&SystemRandom::new(), msg).map_err(failed)?.as_ref().to_vec())
    }
}

impl JwtSigner for EcdsaSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

struct EdSigner {
    alg: Algorithm,
    pair: sig::Ed25519KeyPair,
}

impl Signer<Vec<u8>> for EdSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(self.pair.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for EdSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// RSA, ECDSA and EdDSA verification with a public key: its DER (RSA), its uncompressed
/// point (ECDSA) or its 32 bytes (Ed25519), or an RSA modulus and exponent (a JWK).
struct PublicKeyVerifier {
    alg: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for PublicKeyVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        match self.key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => {
                let alg = public_key_algorithm(self.alg).map_err(failed)?;
                sig::UnparsedPublicKey::new(alg, bytes).verify(msg, signature).map_err(failed)
            }
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let params = rsa_parameters(self.alg).map_err(failed)?;
                sig::RsaPublicKeyComponents { n, e }.verify(params, msg, signature).map_err(failed)
            }
        }
    }
}

impl JwtVerifier for PublicKeyVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn rsa_components_of_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let public = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((public.n, public.e))
}

/// ring reads no RSA public key on its own; tessera never asks for this (the JWK of a
/// public key comes from its components).
fn rsa_components_of_public_key(_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::InvalidRsaKey("reading an RSA public key's components is not supported".to_owned()).into())
}

fn ec_components_of_private_key(der: &[u8], alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (curve, coordinate) = match alg {
        Algorithm::ES256 => (EllipticCurve::P256, 32),
        Algorithm::ES384 => (EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa_signing(alg)?, der, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    // An uncompressed point: 0x04, x, y.
    match pair.public_key().as_ref().split_first() {
        Some((4, xy)) if xy.len() == 2 * coordinate => {
            let (x, y) = xy.split_at(coordinate);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_component_of_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}
