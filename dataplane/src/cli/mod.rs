//! `meshctl`'s argument grammar and output rendering (tables for people, JSON for scripts).

pub mod args;
pub mod render;
