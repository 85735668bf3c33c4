//! Serving admission: the HTTPS router a request enters through
//! ([`admission`]), the accept loop and its connection limits
//! ([`connections`]), TLS with hot-reloaded certificates ([`tls`]), the
//! admin port ([`admin`]), and the live state ([`state`]): the bundle (and
//! candidate) every request reads through one atomic pointer.

pub mod admin;
pub mod admission;
pub mod connections;
pub mod state;
pub mod tls;
