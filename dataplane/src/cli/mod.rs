//! `meshctl`'s argument grammar and output rendering (tables for people, JSON for scripts).

pub mod args;
pub mod progress;
pub mod render;
