//! The `WEARHOUSE_OIDC_*` settings and their checks: single sign-on is either off (no issuer)
//! or fully configured; anything between is an error that names the missing setting.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use openidconnect::{ClientId, ClientSecret, IssuerUrl, RedirectUrl};
use secrecy::{ExposeSecret as _, SecretString};

/// `WEARHOUSE_OIDC_*` settings of single sign-on; flattened into the API's serve arguments.
#[derive(Debug, Clone, Args)]
pub struct OidcArgs {
    /// Issuer URL of the OpenID Provider (its discovery document is under
    /// `/.well-known/openid-configuration`); single sign-on is off when unset. Kept exactly as
    /// given, since the issuer in the provider's tokens must match it character for character.
    #[arg(long = "oidc-issuer", env = "WEARHOUSE_OIDC_ISSUER")]
    pub issuer: Option<String>,

    /// Client id registered at the issuer.
    #[arg(long = "oidc-client-id", env = "WEARHOUSE_OIDC_CLIENT_ID")]
    pub client_id: Option<String>,

    /// File holding the client secret (a Docker secret); its content is never logged.
    #[arg(
        long = "oidc-client-secret-file",
        env = "WEARHOUSE_OIDC_CLIENT_SECRET_FILE"
    )]
    pub client_secret_file: Option<PathBuf>,

    /// Callback URL registered at the issuer, e.g. `https://host/api/auth/oidc/callback`.
    #[arg(long = "oidc-redirect-url", env = "WEARHOUSE_OIDC_REDIRECT_URL")]
    pub redirect_url: Option<url::Url>,

    /// Label of the sign-in button ("Sign in with …").
    #[arg(
        long = "oidc-name",
        env = "WEARHOUSE_OIDC_NAME",
        default_value = "single sign-on"
    )]
    pub display_name: String,

    /// ID token claim that carries roles as `role` or `role:study` strings (a list, or one
    /// space-separated string). Unset: roles are granted in wearhouse, not by the issuer.
    #[arg(long = "oidc-roles-claim", env = "WEARHOUSE_OIDC_ROLES_CLAIM")]
    pub roles_claim: Option<String>,

    /// Scopes asked for besides `openid`, comma-separated.
    #[arg(
        long = "oidc-scopes",
        env = "WEARHOUSE_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "email,profile"
    )]
    pub scopes: Vec<String>,
}

impl Default for OidcArgs {
    /// Single sign-on off, with the command line's defaults.
    fn default() -> Self {
        OidcArgs {
            issuer: None,
            client_id: None,
            client_secret_file: None,
            redirect_url: None,
            display_name: "single sign-on".into(),
            roles_claim: None,
            scopes: vec!["email".into(), "profile".into()],
        }
    }
}

const HALF_SET: &str = "single sign-on is half configured";

/// The settings once checked: everything needed to discover the issuer and register with it.
pub(super) struct Settings {
    pub issuer: IssuerUrl,
    pub client_id: ClientId,
    pub client_secret: ClientSecret,
    pub redirect: RedirectUrl,
}

impl OidcArgs {
    /// `None` when single sign-on is off; an error naming the setting when it is half set, or
    /// when the secret file cannot be read.
    pub(super) fn settings(&self) -> anyhow::Result<Option<Settings>> {
        let Some(issuer) = &self.issuer else {
            let stray = [
                ("WEARHOUSE_OIDC_CLIENT_ID", self.client_id.is_some()),
                (
                    "WEARHOUSE_OIDC_CLIENT_SECRET_FILE",
                    self.client_secret_file.is_some(),
                ),
                ("WEARHOUSE_OIDC_REDIRECT_URL", self.redirect_url.is_some()),
                ("WEARHOUSE_OIDC_ROLES_CLAIM", self.roles_claim.is_some()),
            ];
            if let Some((setting, _)) = stray.iter().find(|(_, set)| *set) {
                bail!("{setting} is set but WEARHOUSE_OIDC_ISSUER is not ({HALF_SET})");
            }
            return Ok(None);
        };
        let client_id = required(&self.client_id, "WEARHOUSE_OIDC_CLIENT_ID")?;
        let secret_file = required(
            &self.client_secret_file,
            "WEARHOUSE_OIDC_CLIENT_SECRET_FILE",
        )?;
        let redirect = required(&self.redirect_url, "WEARHOUSE_OIDC_REDIRECT_URL")?;
        let secret = read_secret(secret_file)?;
        let issuer = IssuerUrl::new(issuer.clone())
            .with_context(|| format!("WEARHOUSE_OIDC_ISSUER `{issuer}` is not a URL"))?;
        Ok(Some(Settings {
            issuer,
            client_id: ClientId::new(client_id.clone()),
            client_secret: ClientSecret::new(secret.expose_secret().to_owned()),
            redirect: RedirectUrl::from_url(redirect.clone()),
        }))
    }
}

/// The value of a setting that must be set once single sign-on is on.
fn required<'a, T>(value: &'a Option<T>, setting: &str) -> anyhow::Result<&'a T> {
    value.as_ref().with_context(|| {
        format!("{setting} must be set when WEARHOUSE_OIDC_ISSUER is ({HALF_SET})")
    })
}

fn read_secret(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "read the client secret file {} (WEARHOUSE_OIDC_CLIENT_SECRET_FILE)",
            path.display()
        )
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        bail!(
            "the client secret file {} (WEARHOUSE_OIDC_CLIENT_SECRET_FILE) is empty",
            path.display()
        );
    }
    Ok(SecretString::from(secret))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::OidcArgs;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        oidc: OidcArgs,
    }

    #[test]
    fn the_defaults_in_code_are_those_of_the_command_line() {
        let parsed = Command::try_parse_from(["serve"]).unwrap().oidc;
        let default = OidcArgs::default();
        assert_eq!(parsed.issuer, default.issuer);
        assert_eq!(parsed.display_name, default.display_name);
        assert_eq!(parsed.scopes, default.scopes);
        assert_eq!(parsed.roles_claim, default.roles_claim);
    }

    #[test]
    fn every_setting_has_its_flag() {
        let parsed = Command::try_parse_from([
            "serve",
            "--oidc-issuer=https://login.example.org/realms/trial",
            "--oidc-client-id=wearhouse",
            "--oidc-client-secret-file=/run/secrets/oidc",
            "--oidc-redirect-url=https://wearhouse.example.org/api/auth/oidc/callback",
            "--oidc-name=Hospital login",
            "--oidc-roles-claim=wearhouse_roles",
            "--oidc-scopes=email,profile,roles",
        ])
        .unwrap()
        .oidc;
        // The issuer stays exactly as written: no trailing slash is added.
        assert_eq!(
            parsed.issuer.as_deref(),
            Some("https://login.example.org/realms/trial")
        );
        assert_eq!(parsed.scopes, ["email", "profile", "roles"]);
        assert_eq!(parsed.display_name, "Hospital login");
    }
}
