//! Webhook certificates without cert-manager: the webhook generates a CA and a serving
//! certificate once, keeps them in a Secret (so every replica and restart serves the same
//! chain), and writes the CA into the ValidatingWebhookConfiguration's `caBundle`.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Secret keys (the `kubernetes.io/tls` layout plus the CA).
pub const KEY_CA: &str = "ca.crt";
/// See [`KEY_CA`].
pub const KEY_CERT: &str = "tls.crt";
/// See [`KEY_CA`].
pub const KEY_KEY: &str = "tls.key";

/// A CA and a serving certificate signed by it, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// CA certificate (goes into `caBundle`).
    pub ca_pem: String,
    /// Serving certificate.
    pub cert_pem: String,
    /// Serving key.
    pub key_pem: String,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

/// Certificate handling failures.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen could not build a certificate.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// The Secret exists but lacks a key.
    #[error("secret {secret} has no {key}")]
    MissingKey {
        /// Secret name.
        secret: String,
        /// Missing data key.
        key: &'static str,
    },
    /// PEM in the Secret is unreadable.
    #[error("secret {secret}: {reason}")]
    BadPem {
        /// Secret name.
        secret: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate/key pair.
    #[error("building the TLS config: {0}")]
    Tls(#[from] rustls::Error),
    /// API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
}

/// DNS names the API server uses to reach `service` in `namespace`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generates a fresh CA and a serving certificate for `dns_names` (and 127.0.0.1, so the
/// same bundle serves tests on loopback).
pub fn generate(dns_names: &[String]) -> Result<CertBundle, CertError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "seldon-mesh-webhook-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = dns_names.to_vec();
    names.push("127.0.0.1".into());
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().map_or("localhost", |s| s.as_str()),
    );
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertBundle {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The bundle stored in a Secret, or an error naming what is missing.
pub fn from_secret(secret: &Secret) -> Result<CertBundle, CertError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data = secret.data.clone().unwrap_or_default();
    let get = |key: &'static str| -> Result<String, CertError> {
        let bytes = data.get(key).ok_or(CertError::MissingKey {
            secret: name.clone(),
            key,
        })?;
        String::from_utf8(bytes.0.clone()).map_err(|e| CertError::BadPem {
            secret: name.clone(),
            reason: e.to_string(),
        })
    };
    Ok(CertBundle {
        ca_pem: get(KEY_CA)?,
        cert_pem: get(KEY_CERT)?,
        key_pem: get(KEY_KEY)?,
    })
}

/// The Secret that stores `bundle`.
pub fn to_secret(name: &str, namespace: &str, bundle: &CertBundle) -> Secret {
    let data = BTreeMap::from([
        (
            KEY_CA.to_string(),
            ByteString(bundle.ca_pem.clone().into_bytes()),
        ),
        (
            KEY_CERT.to_string(),
            ByteString(bundle.cert_pem.clone().into_bytes()),
        ),
        (
            KEY_KEY.to_string(),
            ByteString(bundle.key_pem.clone().into_bytes()),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Sets `caBundle` on every webhook of the configuration; returns whether anything changed.
pub fn set_ca_bundle(config: &mut ValidatingWebhookConfiguration, ca_pem: &str) -> bool {
    let want = ByteString(ca_pem.as_bytes().to_vec());
    let mut changed = false;
    for hook in config.webhooks.iter_mut().flatten() {
        if hook.client_config.ca_bundle.as_ref() != Some(&want) {
            hook.client_config.ca_bundle = Some(want.clone());
            changed = true;
        }
    }
    changed
}

/// Reads the Secret, or generates a bundle and creates it. If another replica created it
/// first (409), uses theirs.
pub async fn ensure_secret(
    client: Client,
    namespace: &str,
    secret_name: &str,
    dns_names: &[String],
) -> Result<CertBundle, CertError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let api_err = |what: &str| {
        let what = format!("{what} secret {namespace}/{secret_name}");
        move |source| CertError::Api { what, source }
    };
    if let Some(s) = api.get_opt(secret_name).await.map_err(api_err("reading"))? {
        return from_secret(&s);
    }
    let bundle = generate(dns_names)?;
    match api
        .create(
            &PostParams::default(),
            &to_secret(secret_name, namespace, &bundle),
        )
        .await
    {
        Ok(_) => Ok(bundle),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            from_secret(&api.get(secret_name).await.map_err(api_err("re-reading"))?)
        }
        Err(e) => Err(api_err("creating")(e)),
    }
}

/// Writes `ca_pem` into the named ValidatingWebhookConfiguration (no write if unchanged).
pub async fn patch_ca_bundle(
    client: Client,
    config_name: &str,
    ca_pem: &str,
) -> Result<(), CertError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let api_err = |what: &'static str| {
        move |source| CertError::Api {
            what: format!("{what} {config_name}"),
            source,
        }
    };
    let mut config = api.get(config_name).await.map_err(api_err("reading"))?;
    if set_ca_bundle(&mut config, ca_pem) {
        api.replace(config_name, &PostParams::default(), &config)
            .await
            .map_err(api_err("updating"))?;
        tracing::info!(config = config_name, "caBundle updated");
    }
    Ok(())
}

/// A rustls server config serving `bundle`'s certificate (HTTP/1.1 and h2).
pub fn server_config(bundle: &CertBundle) -> Result<rustls::ServerConfig, CertError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |reason: String| CertError::BadPem {
        secret: "serving certificate".into(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(bundle.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(bundle.key_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// `caBundle` as the API shows it in YAML (base64), for logs and docs.
pub fn ca_bundle_b64(ca_pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca_pem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::admissionregistration::v1::{ValidatingWebhook, WebhookClientConfig};

    #[test]
    fn generated_bundle_round_trips_through_a_secret_and_serves_tls() {
        let b = generate(&service_dns_names("seldon-mesh-webhook", "seldon-system")).unwrap();
        assert!(b.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let s = to_secret("x", "seldon-system", &b);
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(from_secret(&s).unwrap(), b);
        server_config(&b).unwrap();
    }

    #[test]
    fn secret_without_key_is_an_error_naming_it() {
        let mut s = to_secret("cert", "ns", &generate(&["a".into()]).unwrap());
        s.data.as_mut().unwrap().remove(KEY_KEY);
        let e = from_secret(&s).unwrap_err();
        assert_eq!(e.to_string(), "secret cert has no tls.key");
    }

    #[test]
    fn garbage_pem_is_rejected() {
        let b = CertBundle {
            ca_pem: "x".into(),
            cert_pem: "nope".into(),
            key_pem: "nope".into(),
        };
        assert!(server_config(&b).is_err());
    }

    #[test]
    fn ca_bundle_is_set_on_every_webhook_once() {
        let hook = |n: &str| ValidatingWebhook {
            name: n.into(),
            client_config: WebhookClientConfig::default(),
            ..ValidatingWebhook::default()
        };
        let mut cfg = ValidatingWebhookConfiguration {
            webhooks: Some(vec![hook("a"), hook("b")]),
            ..ValidatingWebhookConfiguration::default()
        };
        assert!(set_ca_bundle(&mut cfg, "PEM"));
        assert!(!set_ca_bundle(&mut cfg, "PEM"));
        for h in cfg.webhooks.unwrap() {
            assert_eq!(h.client_config.ca_bundle.unwrap().0, b"PEM");
        }
        assert_eq!(ca_bundle_b64("PEM"), "UEVN");
    }
}
