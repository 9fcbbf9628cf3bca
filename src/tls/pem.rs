//! Reading PEM certificate chains and private keys, with one error type for every caller.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// Why a PEM file could not be used: names the file, so a config error or a failed
/// certificate reload says which file to fix.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file named in the config.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not valid PEM of the expected kind.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file named in the config.
        path: PathBuf,
        /// What was wrong with its contents.
        reason: String,
    },
}

impl PemError {
    fn from_pem(path: &Path, error: rustls_pki_types::pem::Error) -> PemError {
        match error {
            rustls_pki_types::pem::Error::Io(source) => PemError::Read {
                path: path.to_path_buf(),
                source,
            },
            rustls_pki_types::pem::Error::NoItemsFound => PemError::Invalid {
                path: path.to_path_buf(),
                reason: "no PEM item of the expected kind in the file".to_string(),
            },
            other => PemError::Invalid {
                path: path.to_path_buf(),
                reason: format!("malformed PEM: {other}"),
            },
        }
    }
}

/// Every certificate in a PEM file, in file order (a leaf then its chain, or a CA bundle).
/// A file without a single certificate is an error, not an empty chain.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(path)?;
    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        certificates.push(item.map_err(|error| PemError::from_pem(path, error))?);
    }
    if certificates.is_empty() {
        return Err(PemError::Invalid {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block in the file".to_string(),
        });
    }
    Ok(certificates)
}

/// The first private key in a PEM file: PKCS#8 (RSA, ECDSA, Ed25519), PKCS#1 RSA or SEC1 EC.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => PemError::Invalid {
            path: path.to_path_buf(),
            reason: "no PRIVATE KEY block (PKCS#8, RSA or EC) in the file".to_string(),
        },
        other => PemError::from_pem(path, other),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_generated_chain_and_key_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let both = format!("{}{}", cert.pem(), cert.pem());
        let chain = write(&dir, "chain.pem", &both);
        let key_path = write(&dir, "key.pem", &key.serialize_pem());
        assert_eq!(read_certificates(&chain).unwrap().len(), 2);
        assert!(matches!(
            read_private_key(&key_path).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
    }

    #[test]
    fn missing_empty_and_wrong_kind_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.pem");
        let error = read_certificates(&missing).unwrap_err();
        assert!(matches!(error, PemError::Read { .. }));
        assert!(error.to_string().contains("absent.pem"), "{error}");

        let empty = write(&dir, "empty.pem", "");
        let error = read_certificates(&empty).unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");

        let key = rcgen::KeyPair::generate().unwrap();
        let only_key = write(&dir, "key.pem", &key.serialize_pem());
        let error = read_certificates(&only_key).unwrap_err();
        assert!(error.to_string().contains("key.pem"), "{error}");
        let error = read_private_key(&empty).unwrap_err();
        assert!(error.to_string().contains("no PRIVATE KEY"), "{error}");
    }
}
