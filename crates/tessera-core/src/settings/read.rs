//! How settings are declared and read: the `settings!` macro that makes, from one entry
//! per setting, its docs line, its field and its reading; the reader that collects every
//! problem; and one parser per kind of value.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use tessera_domain::Cidr;

use crate::kv::{parse_duration, parse_windows, Window};
use crate::settings::kinds::Choices;

/// Declares every setting once, and from that one entry makes its line in [`SETTINGS`],
/// its field, and its reading in `Settings::read`. An entry is
///
/// ```text
/// /// MEANING (the line `tessera config docs` prints)
/// field: Type = ["NAME", "OTHER_NAME"] UNSET, parser;
/// ```
///
/// where UNSET says what an unset setting is: `default "V"`, read as if set to V;
/// `unset "SHOWN"`, absent (the field is an `Option`), the docs showing SHOWN; or
/// `computed "SHOWN" => EXPR`, EXPR, worked out once every setting is read, from the
/// others by their field names. The parser turns a set value into the field's type (its
/// inner type for `unset`), or into the problems it has (see [`Parsed`]). Entries under `fields` are fields of
/// [`Settings`]; entries under `inputs` are read and documented alike but only feed the
/// `derived` fields, each built from them once in `derived`. The name after `reader`
/// is the [`Reader`] that computed and derived expressions may report problems to.
macro_rules! settings {
    (reader $r:ident; $($blocks:tt)*) => {
        settings!(@gather $r [] [] $($blocks)*);
    };
    // Every entry is documented and read in the order written; `fields` ones are also kept.
    (@gather $r:ident [$($fields:tt)*] [$($all:tt)*] fields { $($entry:tt)* } $($rest:tt)*) => {
        settings!(@gather $r [$($fields)* $($entry)*] [$($all)* $($entry)*] $($rest)*);
    };
    (@gather $r:ident [$($fields:tt)*] [$($all:tt)*] inputs { $($entry:tt)* } $($rest:tt)*) => {
        settings!(@gather $r [$($fields)*] [$($all)* $($entry)*] $($rest)*);
    };
    (@gather $r:ident [$($fields:tt)*] [$($all:tt)*] derived { $($derived:tt)* }) => {
        settings!(@emit $r [$($fields)*] [$($all)*] [$($derived)*]);
    };
    (@emit $r:ident
        [$(
            $(#[doc = $f_doc:literal])*
            $f_field:ident : $f_ty:ty = [$f_name:literal $(, $f_alias:literal)*]
                $f_unset:ident $f_shown:literal $(=> $f_computed:expr)?, $f_parse:expr;
        )*]
        [$(
            $(#[doc = $doc:literal])*
            $field:ident : $ty:ty = [$name:literal $(, $alias:literal)*]
                $unset:ident $shown:literal $(=> $computed:expr)?, $parse:expr;
        )*]
        [$(
            $(#[doc = $d_doc:literal])*
            $d_field:ident : $d_ty:ty = $d_value:expr;
        )*]
    ) => {
        /// Every setting tessera reads, in the order `tessera config docs` prints them.
        pub const SETTINGS: &[SettingDoc] = &[$(
            SettingDoc {
                names: &[$name $(, $alias)*],
                default: settings!(@default $unset $shown),
                shown: settings!(@shown $unset $shown),
                meaning: concat!($($doc),*).trim_ascii_start(),
            },
        )*];

        /// tessera's whole configuration.
        // A field's doc is its setting's meaning, written for the configuration page:
        // `[:PASSWORD@]` there is a URL's optional part, not a link.
        #[allow(rustdoc::broken_intra_doc_links)]
        #[derive(Clone)]
        pub struct Settings {
            $(
                #[doc = concat!("`", $f_name, "`:")]
                $(#[doc = $f_doc])*
                pub $f_field: $f_ty,
            )*
            $(
                $(#[doc = $d_doc])*
                pub $d_field: $d_ty,
            )*
        }

        impl Settings {
            /// Reads every setting, then works out the computed defaults, then the derived fields.
            fn read($r: &mut Reader<'_>) -> Settings {
                $(
                    let $field: settings!(@read_type $unset $ty) =
                        settings!(@read $r $unset [$name $(, $alias)*] $shown, $parse);
                )*
                $( settings!(@compute $field $unset $(=> $computed)?); )*
                $( let $d_field: $d_ty = $d_value; )*
                Settings { $($f_field,)* $($d_field,)* }
            }
        }
    };
    (@default default $value:literal) => { Some($value) };
    (@default unset $shown:literal) => { None };
    (@default computed $shown:literal) => { None };
    (@shown default $value:literal) => { None };
    (@shown unset $shown:literal) => { Some($shown) };
    (@shown computed $shown:literal) => { Some($shown) };
    (@read_type computed $ty:ty) => { Option<$ty> };
    (@read_type $unset:ident $ty:ty) => { $ty };
    (@read $r:ident default $names:tt $value:literal, $parse:expr) => { $r.with_default(&$names, $value, $parse) };
    (@read $r:ident unset $names:tt $shown:literal, $parse:expr) => { $r.if_set(&$names, $parse) };
    (@read $r:ident computed $names:tt $shown:literal, $parse:expr) => { $r.if_set(&$names, $parse) };
    (@compute $field:ident computed => $computed:expr) => {
        let $field = match $field {
            Some(set) => set,
            None => $computed,
        };
    };
    (@compute $field:ident default) => {};
    (@compute $field:ident unset) => {};
}

pub(super) use settings;

/// A setting's line in the documentation: every name it is read from (the first is
/// canonical), the value it takes when unset (read exactly as a set value would be), and
/// what it means. [`SETTINGS`] holds one per setting; `tessera config docs` prints them.
pub struct SettingDoc {
    pub names: &'static [&'static str],
    /// The value used when the setting is unset; `None`: unset means absent, or a value
    /// computed from other settings (then `shown` says which).
    pub default: Option<&'static str>,
    /// What the documentation shows as the default, when it is not `default` itself.
    pub shown: Option<&'static str>,
    pub meaning: &'static str,
}

impl SettingDoc {
    /// The default as the documentation shows it.
    pub fn shown_default(&self) -> String {
        match (self.shown, self.default) {
            (Some(shown), _) => shown.to_owned(),
            (None, Some(v)) => format!("`{v}`"),
            (None, None) => "(none)".to_owned(),
        }
    }
}

/// Reads settings from a map of variables, collecting every problem instead of stopping
/// at the first.
pub(crate) struct Reader<'a> {
    pub(crate) vars: &'a HashMap<String, String>,
    pub(crate) problems: Vec<String>,
}

impl<'a> Reader<'a> {
    /// The value of the first of `names` set to more than blanks, and that name.
    pub(crate) fn set(&self, names: &[&'static str]) -> Option<(&'static str, &'a str)> {
        let vars = self.vars;
        names.iter().find_map(|n| vars.get(*n).map(|v| v.trim()).filter(|v| !v.is_empty()).map(|v| (*n, v)))
    }

    /// The value set, else `default`, parsed alike. A value that does not parse is
    /// reported, and `T::default()` stands in for it.
    pub(crate) fn with_default<T: Default>(
        &mut self,
        names: &[&'static str],
        default: &'static str,
        parse: impl Fn(&str, &str) -> Parsed<T>,
    ) -> T {
        let canonical = names.first().copied().unwrap_or_default();
        let (name, value) = self.set(names).unwrap_or((canonical, default));
        self.keep(parse(name, value)).unwrap_or_default()
    }

    /// The value set, parsed; `None` when unset or when it does not parse (reported).
    pub(crate) fn if_set<T>(&mut self, names: &[&'static str], parse: impl Fn(&str, &str) -> Parsed<T>) -> Option<T> {
        let (name, value) = self.set(names)?;
        self.keep(parse(name, value))
    }

    /// The parsed value, or `None` with its problems reported.
    pub(crate) fn keep<T>(&mut self, parsed: Parsed<T>) -> Option<T> {
        parsed.map_err(|problems| self.problems.extend(problems)).ok()
    }
}

/// What a parser makes of a setting's value (given with the name it was set under): the
/// value, or one line per problem, each naming the setting.
pub(crate) type Parsed<T> = Result<T, Vec<String>>;

/// The value as written: a string, a path or a secret.
pub(crate) fn text<T: From<String>>(_: &str, value: &str) -> Parsed<T> {
    Ok(T::from(value.to_owned()))
}

/// A PEM key, where `\n` stands for a line break (an environment variable holds one line).
pub(crate) fn pem(_: &str, value: &str) -> Parsed<SecretString> {
    Ok(SecretString::from(value.replace("\\n", "\n")))
}

/// A URL links are built on, without its trailing slashes.
pub(crate) fn base_url(_: &str, value: &str) -> Parsed<String> {
    Ok(value.trim_end_matches('/').to_owned())
}

/// A setting whose field is an `Option` even when set (its unset value is computed).
pub(crate) fn some<T>(parse: impl Fn(&str, &str) -> Parsed<T>) -> impl Fn(&str, &str) -> Parsed<Option<T>> {
    move |name, value| parse(name, value).map(Some)
}

/// true or false, also written 1/0, yes/no or on/off, in any case.
pub(crate) fn flag(name: &str, value: &str) -> Parsed<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(vec![format!("{name}={value:?} is not true or false")]),
    }
}

/// A number; `what` says which, in a refusal.
pub(crate) fn number<T: FromStr>(what: &'static str) -> impl Fn(&str, &str) -> Parsed<T> {
    move |name, value| value.parse().map_err(|_| vec![format!("{name}={value:?} is not {what}")])
}

/// A whole number, raised to `least` when below it.
pub(crate) fn at_least<T: FromStr + Ord + Copy>(least: T) -> impl Fn(&str, &str) -> Parsed<T> {
    move |name, value| number("a whole number")(name, value).map(|n: T| n.max(least))
}

pub(crate) fn seconds(name: &str, value: &str) -> Parsed<Duration> {
    number("a whole number of seconds")(name, value).map(Duration::from_secs)
}

pub(crate) fn minutes(name: &str, value: &str) -> Parsed<Duration> {
    number("a whole number of minutes")(name, value).map(|m: u64| Duration::from_secs(60 * m))
}

pub(crate) fn days(name: &str, value: &str) -> Parsed<Duration> {
    number("a whole number of days")(name, value).map(|d: u64| Duration::from_secs(86_400 * d))
}

/// A whole number of days, lowered to `most` when above it.
pub(crate) fn days_at_most(most: u64) -> impl Fn(&str, &str) -> Parsed<Duration> {
    move |name, value| {
        number("a whole number of days")(name, value).map(|d: u64| Duration::from_secs(86_400 * d.min(most)))
    }
}

/// A positive duration such as 15m, 24h or 30s.
pub(crate) fn duration(name: &str, value: &str) -> Parsed<Duration> {
    match parse_duration(value).filter(|secs| *secs > 0) {
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(vec![format!("{name}={value:?} is not a duration such as 15m, 24h or 30s")]),
    }
}

/// Rate-limit windows, LIMIT/PERIOD,...
pub(crate) fn windows(name: &str, value: &str) -> Parsed<Vec<Window>> {
    parse_windows(value).map_err(|e| vec![format!("{name}: {e}")])
}

/// A list, comma-separated or a JSON array of strings (the seeds write both).
pub(crate) fn list(_: &str, value: &str) -> Parsed<Vec<String>> {
    let value = value.trim().trim_start_matches('[').trim_end_matches(']');
    Ok(value
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

pub(crate) fn secrets(name: &str, value: &str) -> Parsed<Vec<SecretString>> {
    Ok(list(name, value)?.into_iter().map(SecretString::from).collect())
}

/// A list of IPs or CIDRs, one problem per entry that is neither.
pub(crate) fn cidrs(name: &str, value: &str) -> Parsed<Vec<Cidr>> {
    let mut nets = Vec::new();
    let mut problems = Vec::new();
    for raw in list(name, value)? {
        match Cidr::parse(&raw) {
            Ok(net) => nets.push(net),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(nets)
    } else {
        Err(problems)
    }
}

/// One of `choices`' words, in any case.
pub(crate) fn one_of<T: Copy>(choices: &'static Choices<T>) -> impl Fn(&str, &str) -> Parsed<T> {
    move |name, value| {
        let word = value.to_ascii_lowercase();
        match choices.words.iter().find(|(w, _)| *w == word) {
            Some((_, choice)) => Ok(*choice),
            None => Err(vec![format!("{name}={word:?} is not {}", choices.listed)]),
        }
    }
}

/// A JWT signing algorithm tessera implements, spelled as the JOSE header spells it.
pub(crate) fn signing_algorithm(name: &str, value: &str) -> Parsed<String> {
    let algorithm = match value.to_ascii_uppercase().as_str() {
        "EDDSA" => "EdDSA".to_owned(),
        other => other.to_owned(),
    };
    if matches!(algorithm.as_str(), "HS256" | "HS384" | "HS512" | "RS256" | "ES256" | "EdDSA") {
        Ok(algorithm)
    } else {
        Err(vec![format!("{name}={algorithm:?} is not supported (use HS256, HS384, HS512, RS256, ES256 or EdDSA)")])
    }
}
