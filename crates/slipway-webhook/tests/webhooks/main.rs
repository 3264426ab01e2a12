//! Deliveries shaped like each forge's, signed as the forge signs them, through
//! `verify_and_parse`.

mod bitbucket_cloud;
mod bitbucket_dc;
mod common;
mod gitea;
mod github;
mod rules;
