//! Pure types and rules of tessera: nothing here performs I/O.
//!
//! Values are parsed once at the edge ("parse, don't validate") and carried as types
//! that are valid by construction.

mod cidr;
mod email;
mod error;
mod password;
mod permission;
mod phone;
mod role;
mod text;

pub use cidr::Cidr;
pub use email::Email;
pub use error::{Error, ErrorKind, FieldError};
pub use password::{common_password_count, normalize_password, PasswordPolicy, CONTROL_CLASS, WHITESPACE_CLASS};
pub use permission::{Permission, Permissions};
pub use phone::Phone;
pub use role::Role;
pub use text::{bounded_text, FullName};
