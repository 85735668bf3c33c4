//! `regent cert`: a development CA and serving certificate, and the caBundle
//! to paste into a webhook configuration.

use std::path::PathBuf;

use base64::Engine as _;

use crate::serve::tls;

/// Arguments of `regent cert`.
#[derive(Debug, clap::Args)]
pub struct CertArgs {
    /// Directory to write ca.crt, tls.crt and tls.key into.
    #[arg(long, env = "REGENT_CERT_OUT")]
    pub out: PathBuf,
    /// DNS names (or IPs) of the serving certificate, e.g. regent.regent-system.svc.
    #[arg(
        long = "dns",
        env = "REGENT_CERT_DNS",
        value_delimiter = ',',
        required = true
    )]
    pub dns: Vec<String>,
}

impl CertArgs {
    /// Writes the files and prints the caBundle.
    pub fn run(self) -> anyhow::Result<u8> {
        let Self { out, dns } = self;
        let certs = tls::generate_dev(&dns)?;
        certs.write(&out)?;
        eprintln!(
            "wrote {}/ca.crt, tls.crt and tls.key (serving certificate for {})",
            out.display(),
            dns.join(", ")
        );
        eprintln!("caBundle for the webhook configurations:");
        println!(
            "{}",
            base64::engine::general_purpose::STANDARD.encode(certs.ca_pem.as_bytes())
        );
        Ok(super::common::EXIT_OK)
    }
}
