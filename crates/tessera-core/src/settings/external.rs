//! The settings of the sign-in providers (SPEC §5.11): `EXTERNAL_<NAME>_*`, GoTrue's names
//! less `GOTRUE_`, whose names are not fixed (any `<NAME>` is a provider), and the presets.

use secrecy::SecretString;

use super::read::{flag, Reader};

/// The providers tessera knows by name, and any other OpenID Connect provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Google,
    GitHub,
    GitLab,
    Azure,
    Keycloak,
    /// Any OpenID Connect provider, found by `EXTERNAL_<NAME>_ISSUER`.
    Oidc,
}

impl Preset {
    pub(crate) fn of(name: &str) -> Preset {
        match name {
            "google" => Preset::Google,
            "github" => Preset::GitHub,
            "gitlab" => Preset::GitLab,
            "azure" => Preset::Azure,
            "keycloak" => Preset::Keycloak,
            _ => Preset::Oidc,
        }
    }

    /// The scopes asked for when the request names none beyond them.
    pub(crate) fn scopes(self) -> &'static str {
        match self {
            Preset::GitHub => "user:email",
            Preset::GitLab => "openid email profile read_user",
            _ => "openid email profile",
        }
    }
}

/// One provider's settings.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The name in URLs (`provider=google`): `<NAME>` lower-cased.
    pub name: String,
    pub preset: Preset,
    pub enabled: bool,
    /// The first is this server's client id at the provider; every one is an accepted
    /// audience of ID tokens (apps of one project on the web, iOS, Android).
    pub client_ids: Vec<String>,
    pub secret: Option<SecretString>,
    /// The callback registered at the provider.
    pub redirect_uri: String,
    /// A self-hosted GitLab or Keycloak realm, or GitHub Enterprise.
    pub url: Option<String>,
    /// The issuer of an OpenID Connect provider (discovery at `ISSUER/.well-known/openid-configuration`).
    pub issuer: Option<String>,
}

impl ProviderSettings {
    /// The issuer ID tokens of this provider carry; `None` for GitHub (not OpenID Connect).
    pub fn issuer(&self) -> Option<String> {
        let url = self.url.as_deref().map(|u| u.trim_end_matches('/').to_owned());
        match self.preset {
            Preset::GitHub => None,
            Preset::Google => Some(self.issuer.clone().unwrap_or_else(|| "https://accounts.google.com".to_owned())),
            Preset::Azure => Some(self.issuer.clone().unwrap_or_else(|| {
                format!("{}/v2.0", url.unwrap_or_else(|| "https://login.microsoftonline.com/common".to_owned()))
            })),
            Preset::GitLab => Some(self.issuer.clone().or(url).unwrap_or_else(|| "https://gitlab.com".to_owned())),
            Preset::Keycloak | Preset::Oidc => self.issuer.clone().or(url),
        }
    }
}

/// The suffixes of a provider's settings, longest first where one ends another.
const SUFFIXES: &[&str] = &["_REDIRECT_URI", "_CLIENT_ID", "_ENABLED", "_SECRET", "_ISSUER", "_URL"];

/// Every provider named by an `EXTERNAL_<NAME>_*` variable; problems (an enabled provider
/// without a client id, an unknown one without an issuer, a value that is not a URL) go
/// to the reader.
pub(crate) fn from_vars(r: &mut Reader<'_>, public_url: &str) -> Vec<ProviderSettings> {
    let mut names: Vec<String> = r
        .vars
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .filter_map(|(k, _)| {
            let rest = k.strip_prefix("EXTERNAL_")?;
            SUFFIXES.iter().find_map(|s| rest.strip_suffix(s)).filter(|n| !n.is_empty()).map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for upper in names {
        let var = |suffix: &str| format!("EXTERNAL_{upper}{suffix}");
        let get = |r: &Reader<'_>, suffix: &str| {
            r.vars.get(&var(suffix)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
        };
        let enabled = match get(r, "_ENABLED") {
            Some(v) => r.keep(flag(&var("_ENABLED"), &v)).unwrap_or(false),
            None => false,
        };
        let name = upper.to_ascii_lowercase().replace('_', "-");
        let preset = Preset::of(&name);
        let client_ids: Vec<String> = get(r, "_CLIENT_ID")
            .map(|v| v.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect())
            .unwrap_or_default();
        let url_setting = |r: &mut Reader<'_>, suffix: &str| {
            let value = get(r, suffix)?;
            match url::Url::parse(&value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(value.trim_end_matches('/').to_owned()),
                _ => {
                    r.problems.push(format!("{}={value:?} is not an http(s) URL", var(suffix)));
                    None
                }
            }
        };
        let url = url_setting(r, "_URL");
        let issuer = url_setting(r, "_ISSUER");
        let redirect_uri = url_setting(r, "_REDIRECT_URI").unwrap_or_else(|| format!("{public_url}/auth/v1/callback"));
        let settings = ProviderSettings {
            name,
            preset,
            enabled,
            client_ids,
            secret: get(r, "_SECRET").map(SecretString::from),
            redirect_uri,
            url,
            issuer,
        };
        if enabled {
            if settings.client_ids.is_empty() {
                r.problems.push(format!("{} must be set when {}=true", var("_CLIENT_ID"), var("_ENABLED")));
            }
            if settings.issuer().is_none() && preset != Preset::GitHub {
                r.problems.push(match preset {
                    Preset::Keycloak => {
                        format!("{} (the realm's URL) must be set when {}=true", var("_URL"), var("_ENABLED"))
                    }
                    _ => format!(
                        "{} must be set: {} is not a preset provider (google, github, gitlab, azure, keycloak)",
                        var("_ISSUER"),
                        settings.name
                    ),
                });
            }
        }
        out.push(settings);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(name: &str, url: Option<&str>) -> ProviderSettings {
        ProviderSettings {
            name: name.to_owned(),
            preset: Preset::of(name),
            enabled: true,
            client_ids: vec!["x".to_owned()],
            secret: None,
            redirect_uri: String::new(),
            url: url.map(str::to_owned),
            issuer: None,
        }
    }

    #[test]
    fn each_preset_knows_its_issuer() {
        let issuer = |name: &str, url: Option<&str>| preset(name, url).issuer();
        assert_eq!(issuer("google", None).as_deref(), Some("https://accounts.google.com"));
        assert_eq!(issuer("gitlab", None).as_deref(), Some("https://gitlab.com"));
        assert_eq!(issuer("gitlab", Some("https://git.example.com/")).as_deref(), Some("https://git.example.com"));
        assert_eq!(issuer("azure", None).as_deref(), Some("https://login.microsoftonline.com/common/v2.0"));
        assert_eq!(
            issuer("azure", Some("https://login.microsoftonline.com/contoso")).as_deref(),
            Some("https://login.microsoftonline.com/contoso/v2.0")
        );
        assert_eq!(
            issuer("keycloak", Some("https://kc.example.com/realms/acme")).as_deref(),
            Some("https://kc.example.com/realms/acme")
        );
        assert_eq!(issuer("keycloak", None), None, "a Keycloak needs its realm's URL");
        assert_eq!(issuer("github", Some("https://ghe.example.com")), None, "GitHub is not OpenID Connect");
    }

    #[test]
    fn providers_are_read_from_their_variables() {
        let vars: std::collections::HashMap<String, String> = [
            ("EXTERNAL_GOOGLE_ENABLED", "true"),
            ("EXTERNAL_GOOGLE_CLIENT_ID", "web, ios"),
            ("EXTERNAL_MY_IDP_ENABLED", "true"),
            ("EXTERNAL_MY_IDP_CLIENT_ID", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut r = Reader { vars: &vars, problems: Vec::new() };
        let list = from_vars(&mut r, "https://id.example.com");
        assert_eq!(list.len(), 2);
        let google = list.iter().find(|p| p.name == "google").map(|p| p.client_ids.clone());
        assert_eq!(google, Some(vec!["web".to_owned(), "ios".to_owned()]));
        assert_eq!(list[0].redirect_uri, "https://id.example.com/auth/v1/callback");
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("EXTERNAL_MY_IDP_ISSUER"));
    }

    #[test]
    fn presets_know_their_scopes() {
        assert_eq!(Preset::of("github").scopes(), "user:email");
        assert_eq!(Preset::of("other").scopes(), "openid email profile");
    }
}
