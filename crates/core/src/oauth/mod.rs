//! OAuth building blocks shared by every token-endpoint leg: form requests with client
//! authentication, and parsing of token and error responses.
//!
//! Each grant is a request builder plus a response processor (panva/oauth4webapi's
//! `genericTokenEndpointRequest` + `processGenericTokenEndpointResponse`): pure functions that
//! unit tests check byte for byte, with the transport injected between them.

pub mod client_auth;
pub mod error;
pub mod token_request;

pub use error::{OAuthErrorResponse, ResponseError, StepUp};
pub use token_request::{TokenRequest, TokenResponse, parse_token_response};
